"""yzd-v/cls_KD's loss modules (``mmcls/models/dis_losses/{kd,dkd,nkd,uskd}.py``, mmpretrain / mmcls
1.x style) with their exact constructor signatures, defaults, ``forward`` arguments and return
conventions, computed by the fused losses. A cls_KD config such as::

    distill_losses = dict(loss_nkd=dict(type='NKDLoss', name='loss_nkd', use_this=True, temp=1.0, gamma=1.5))

builds these classes once this module is imported: they are registered into mmengine's root
``MODELS`` registry under the authors' names when mmengine is importable (mmpretrain's registry
finds them through its parent), unless a class of that name is registered there already.

``name`` and ``use_this`` are the distiller's bookkeeping: kept as attributes, unused by the loss
(as in the authors' modules). Every loss is averaged over the batch (``reduction="batchmean"``).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .. import functional as _F
from .._checks import real as _real

__all__ = ["KDLoss", "DKDLoss", "NKDLoss", "USKDLoss", "register_with_mmengine"]


def _acc(x: torch.Tensor) -> torch.Tensor:
    return x.double() if x.dtype == torch.float64 else x.float()


class KDLoss(nn.Module):
    """cls_KD ``KDLoss(name, use_this, temp=4.0, alpha=0.5)``.

    ``forward(logit_s, logit_t)`` returns ``(1 - alpha, loss)`` as the authors' module does: the
    distiller weights the student's own cross-entropy by the first element. ``loss`` is the authors'
    cross-entropy form ``−α τ² mean_i Σ_j p_t,ij log p_s,ij`` with ``p = softmax(·/τ)``, that is
    ``α · (fusedkd.kd_loss + τ² · mean_i H(p_t,i))``: the teacher-entropy term is a constant (no
    gradient), added so that the value is the authors'.
    """

    def __init__(self, name: str, use_this: bool, temp: float = 4.0, alpha: float = 0.5) -> None:
        super().__init__()
        self.name, self.use_this = name, use_this
        self.temp, self.alpha = _real(temp, "temp"), _real(alpha, "alpha")

    def forward(self, logit_s: torch.Tensor, logit_t: torch.Tensor) -> tuple[float, torch.Tensor]:
        kl = _F.kd_loss(logit_s, logit_t, self.temp)
        with torch.no_grad():
            p_t = torch.softmax(_acc(logit_t) / self.temp, dim=1)
            entropy = torch.special.entr(p_t).sum(dim=1).mean() if p_t.shape[0] else p_t.new_zeros(())
        return 1 - self.alpha, self.alpha * (kl + self.temp**2 * entropy.to(kl.dtype))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, use_this={self.use_this}, temp={self.temp}, alpha={self.alpha}"


def _labels(gt_label: torch.Tensor) -> torch.Tensor:
    # The authors' masks use gt_label.reshape(-1): an [N, 1] label column works there too.
    return gt_label.reshape(-1) if gt_label.dim() == 2 and not gt_label.is_floating_point() else gt_label


class DKDLoss(nn.Module):
    """cls_KD ``DKDLoss(name, use_this, temp=4.0, alpha=1.0, beta=6.0)`` (note: β = 6 here, where
    mdistiller's CIFAR configs use 8). ``forward(logit_s, logit_t, gt_label)`` → ``α·TCKD + β·NCKD``
    averaged over the batch (:func:`fusedkd.dkd_loss`)."""

    def __init__(self, name: str, use_this: bool, temp: float = 4.0, alpha: float = 1.0, beta: float = 6.0) -> None:
        super().__init__()
        self.name, self.use_this = name, use_this
        self.temp, self.alpha, self.beta = _real(temp, "temp"), _real(alpha, "alpha"), _real(beta, "beta")

    def forward(self, logit_s: torch.Tensor, logit_t: torch.Tensor, gt_label: torch.Tensor) -> torch.Tensor:
        return _F.dkd_loss(logit_s, logit_t, _labels(gt_label), self.alpha, self.beta, self.temp)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, use_this={self.use_this}, temp={self.temp}, alpha={self.alpha}, "
                f"beta={self.beta}")


class NKDLoss(nn.Module):
    """cls_KD ``NKDLoss(name, use_this, temp=1.0, gamma=1.5)``. ``forward(logit_s, logit_t, gt_label)``
    → ``−p_t,y log p_s,y − γ τ² Σ_{j≠y} q_t,j log q_s,j`` averaged over the batch
    (:func:`fusedkd.nkd_loss`); ``gt_label`` may be soft labels ``[N, C]`` (their argmax)."""

    def __init__(self, name: str, use_this: bool, temp: float = 1.0, gamma: float = 1.5) -> None:
        super().__init__()
        self.name, self.use_this = name, use_this
        self.temp, self.gamma = _real(temp, "temp"), _real(gamma, "gamma")

    def forward(self, logit_s: torch.Tensor, logit_t: torch.Tensor, gt_label: torch.Tensor) -> torch.Tensor:
        return _F.nkd_loss(logit_s, logit_t, _labels(gt_label), self.temp, self.gamma)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, use_this={self.use_this}, temp={self.temp}, gamma={self.gamma}"


class USKDLoss(nn.Module):
    """cls_KD ``USKDLoss(name, use_this, channel=None, alpha=1.0, beta=0.1, mu=0.005, num_classes=1000)``.

    Owns the weak head ``fc = nn.Linear(channel, num_classes)`` under the authors' attribute name, so
    their checkpoints load. ``forward(fea_mid, logit_s, gt_label)`` → ``α·T + β·NT + W`` averaged over
    the batch (:func:`fusedkd.uskd_loss` on ``fc(fea_mid)``); ``gt_label`` may be soft labels ``[N, C]``.
    ``num_classes`` must equal C (the authors' Zipf table has ``num_classes`` entries).
    """

    def __init__(self, name: str, use_this: bool, channel: int | None = None, alpha: float = 1.0,
                 beta: float = 0.1, mu: float = 0.005, num_classes: int = 1000) -> None:
        super().__init__()
        if channel is None:
            raise ValueError("USKDLoss: channel (the feature size of fea_mid, for the weak head fc) is required")
        self.name, self.use_this = name, use_this
        self.channel = channel
        self.alpha, self.beta, self.mu = _real(alpha, "alpha"), _real(beta, "beta"), _real(mu, "mu")
        self.fc = nn.Linear(channel, num_classes)

    def forward(self, fea_mid: torch.Tensor, logit_s: torch.Tensor, gt_label: torch.Tensor) -> torch.Tensor:
        weak = self.fc(fea_mid)
        return _F.uskd_loss(logit_s, weak.to(logit_s.dtype), _labels(gt_label), self.alpha, self.beta, self.mu)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, use_this={self.use_this}, channel={self.channel}, alpha={self.alpha}, "
                f"beta={self.beta}, mu={self.mu}")


def register_with_mmengine() -> list[str]:
    """Registers the four classes into ``mmengine.registry.MODELS`` under the authors' names when
    mmengine is importable; returns the names registered (none without mmengine, and none for a
    name that is registered to another class already: that one is left as it is, with a warning)."""
    try:
        from mmengine.registry import MODELS
    except ImportError:  # mmengine is optional
        return []
    registered = []
    for cls in (KDLoss, DKDLoss, NKDLoss, USKDLoss):
        existing = MODELS.module_dict.get(cls.__name__)
        if existing is not None and existing is not cls:
            warnings.warn(f"fusedkd.compat.cls_kd: mmengine's MODELS has a {cls.__name__} already; fusedkd's is "
                          "not registered under that name", stacklevel=2)
            continue
        if existing is None:
            MODELS.register_module(name=cls.__name__, module=cls)
        registered.append(cls.__name__)
    return registered


register_with_mmengine()
