"""``nn.Module`` wrappers of the functional losses, holding their hyper-parameters.

Each module validates its arguments when it is built (the same rules as the functions, see
``fusedkd._checks``) and again on every call, so an attribute changed later is checked too.
``extra_repr`` lists every argument. The formulas, defaults and references are those of the
functions in :mod:`fusedkd.functional`.
"""

from __future__ import annotations

import torch
from torch import nn

from . import functional as F
from ._checks import boolean as _boolean
from ._checks import integer as _integer
from ._checks import real as _real
from ._checks import reduction as _reduction

__all__ = ["KDLoss", "DKDLoss", "NKDLoss", "USKDLoss", "RLDLoss"]


class KDLoss(nn.Module):
    """Hinton KD (mdistiller ``KD.py``), see :func:`fusedkd.kd_loss`:
    ``ℓ_i = τ² · KL(softmax(t_i/τ) ‖ softmax(s_i/τ))``.

    Args:
        temperature: τ (default 4.0).
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``.
        logit_standardization: standardize both rows first (default False).

    ``forward(student_logits, teacher_logits)`` → the loss (fp32; fp64 for fp64 logits).
    """

    def __init__(self, temperature: float = 4.0, reduction: str = "batchmean",
                 logit_standardization: bool = False) -> None:
        super().__init__()
        self.temperature = _real(temperature, "temperature")
        self.reduction = _reduction(reduction)
        self.logit_standardization = _boolean(logit_standardization, "logit_standardization")

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return F.kd_loss(student_logits, teacher_logits, self.temperature,
                         logit_standardization=self.logit_standardization, reduction=self.reduction)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, reduction={self.reduction!r}, "
                f"logit_standardization={self.logit_standardization}")


class DKDLoss(nn.Module):
    """Decoupled KD (mdistiller ``DKD.py``), see :func:`fusedkd.dkd_loss`:
    ``ℓ_i = α·TCKD + β·NCKD``.

    Args:
        alpha: weight of TCKD, α (default 1.0).
        beta: weight of NCKD, β (default 8.0: the CIFAR configs; ImageNet uses 0.5 with τ = 1).
        temperature: τ (default 4.0).
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``.
        ignore_index: label of rows that do not count (default -100).
        logit_standardization: standardize both rows first (default False).

    ``forward(student_logits, teacher_logits, target)`` → the loss.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        reduction: str = "batchmean",
        ignore_index: int = -100,
        logit_standardization: bool = False,
    ) -> None:
        super().__init__()
        self.alpha, self.beta = _real(alpha, "alpha"), _real(beta, "beta")
        self.temperature = _real(temperature, "temperature")
        self.reduction, self.ignore_index = _reduction(reduction), _integer(ignore_index, "ignore_index")
        self.logit_standardization = _boolean(logit_standardization, "logit_standardization")

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.dkd_loss(
            student_logits, teacher_logits, target, self.alpha, self.beta, self.temperature,
            logit_standardization=self.logit_standardization, reduction=self.reduction,
            ignore_index=self.ignore_index,
        )

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, beta={self.beta}, temperature={self.temperature}, "
                f"reduction={self.reduction!r}, ignore_index={self.ignore_index}, "
                f"logit_standardization={self.logit_standardization}")


class NKDLoss(nn.Module):
    """Normalized KD (cls_KD ``nkd.py``), see :func:`fusedkd.nkd_loss`:
    ``ℓ_i = −p_t,y log p_s,y − γ τ² Σ_{j≠y} q_t,j log q_s,j``.

    Args:
        temperature: τ of the non-target term (default 1.0; the target term is at 1).
        gamma: γ (default 1.5).
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``.
        ignore_index: label of rows that do not count (default -100).

    ``forward(student_logits, teacher_logits, target)``; ``target`` may be soft labels ``[N, C]``.
    """

    def __init__(self, temperature: float = 1.0, gamma: float = 1.5, reduction: str = "batchmean",
                 ignore_index: int = -100) -> None:
        super().__init__()
        self.temperature, self.gamma = _real(temperature, "temperature"), _real(gamma, "gamma")
        self.reduction, self.ignore_index = _reduction(reduction), _integer(ignore_index, "ignore_index")

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.nkd_loss(student_logits, teacher_logits, target, self.temperature, self.gamma,
                          reduction=self.reduction, ignore_index=self.ignore_index)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, gamma={self.gamma}, reduction={self.reduction!r}, "
                f"ignore_index={self.ignore_index}")


class RLDLoss(nn.Module):
    """Refined logit distillation (zju-SWJ/RLD ``RLD.py``), see :func:`fusedkd.rld_loss`:
    ``ℓ_i = α·SCD + β·MCD``, optionally on standardized logits.

    Args:
        alpha: weight of SCD, α (default 1.0).
        beta: weight of MCD, β (default 8.0).
        temperature: τ of MCD (default 4.0).
        logit_standardization: standardize both rows first (default False).
        alpha_temperature: temperature of SCD, α_τ (default 1.0).
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``.
        ignore_index: label of rows that do not count (default -100).

    ``forward(student_logits, teacher_logits, target)`` → the loss.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
                 logit_standardization: bool = False, alpha_temperature: float = 1.0,
                 reduction: str = "batchmean", ignore_index: int = -100) -> None:
        super().__init__()
        self.alpha, self.beta = _real(alpha, "alpha"), _real(beta, "beta")
        self.temperature = _real(temperature, "temperature")
        self.alpha_temperature = _real(alpha_temperature, "alpha_temperature")
        self.logit_standardization = _boolean(logit_standardization, "logit_standardization")
        self.reduction, self.ignore_index = _reduction(reduction), _integer(ignore_index, "ignore_index")

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.rld_loss(student_logits, teacher_logits, target, self.alpha, self.beta, self.temperature,
                          alpha_temperature=self.alpha_temperature,
                          logit_standardization=self.logit_standardization,
                          reduction=self.reduction, ignore_index=self.ignore_index)

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, beta={self.beta}, temperature={self.temperature}, "
                f"logit_standardization={self.logit_standardization}, alpha_temperature={self.alpha_temperature}, "
                f"reduction={self.reduction!r}, ignore_index={self.ignore_index}")


class USKDLoss(nn.Module):
    """Teacher-free USKD (cls_KD ``uskd.py``), see :func:`fusedkd.uskd_loss`:
    ``ℓ_i = α·T + β·NT + W`` on the student logits and the weak logits ``fc(feature)``.

    Owns the extra linear layer on an intermediate feature, as the reference module does.

    Args:
        in_features: size of the feature fed to the weak head (the reference's ``channel``).
        num_classes: C.
        alpha: weight of the target term, α (default 1.0).
        beta: weight of the Zipf non-target term, β (default 0.1).
        mu: weight of the weak-supervision term, μ (default 0.005).
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``.
        ignore_index: label of rows that do not count (default -100).

    ``forward(feature, student_logits, target)``; ``target`` may be soft labels ``[N, C]``.
    """

    def __init__(self, in_features: int, num_classes: int, alpha: float = 1.0, beta: float = 0.1,
                 mu: float = 0.005, reduction: str = "batchmean", ignore_index: int = -100) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)
        self.alpha, self.beta, self.mu = _real(alpha, "alpha"), _real(beta, "beta"), _real(mu, "mu")
        self.reduction, self.ignore_index = _reduction(reduction), _integer(ignore_index, "ignore_index")

    def forward(self, feature: torch.Tensor, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weak = self.fc(feature)
        return F.uskd_loss(student_logits, weak.to(student_logits.dtype), target, self.alpha, self.beta, self.mu,
                           reduction=self.reduction, ignore_index=self.ignore_index)

    def extra_repr(self) -> str:
        # nn.Linear's repr (in_features, num_classes) is printed as the child module `fc`.
        return (f"alpha={self.alpha}, beta={self.beta}, mu={self.mu}, reduction={self.reduction!r}, "
                f"ignore_index={self.ignore_index}")
