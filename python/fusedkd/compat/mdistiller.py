"""megvii-research/mdistiller's loss functions (``mdistiller/distillers/KD.py``, ``DKD.py``) with their
exact signatures: same parameter names (``logits_student=``, ``logits_teacher=``, ``target=``), no
defaults (the distillers pass every value from their config), a scalar loss averaged over the batch.

mdistiller's trainers add the cross-entropy and the loss weight / warm-up themselves::

    loss_kd = cfg.KD.LOSS.KD_WEIGHT * kd_loss(logits_student, logits_teacher, cfg.KD.TEMPERATURE)
    loss_dkd = min(epoch / cfg.DKD.WARMUP, 1.0) * dkd_loss(logits_student, logits_teacher, target,
                                                           cfg.DKD.ALPHA, cfg.DKD.BETA, cfg.DKD.T)
"""

from __future__ import annotations

import torch

from .. import functional as _F

__all__ = ["kd_loss", "dkd_loss"]


def kd_loss(logits_student: torch.Tensor, logits_teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """mdistiller ``kd_loss``: ``τ² · mean_i KL(softmax(t_i/τ) ‖ softmax(s_i/τ))``
    (= :func:`fusedkd.kd_loss` with ``reduction="batchmean"``).

    Args:
        logits_student: ``[N, C]`` student logits (receive the gradient).
        logits_teacher: ``[N, C]`` teacher logits (a constant).
        temperature: τ (mdistiller's CIFAR configs: 4).
    """
    return _F.kd_loss(logits_student, logits_teacher, temperature)


def dkd_loss(
    logits_student: torch.Tensor,
    logits_teacher: torch.Tensor,
    target: torch.Tensor,
    alpha: float,
    beta: float,
    temperature: float,
) -> torch.Tensor:
    """mdistiller ``dkd_loss``: ``α·TCKD + β·NCKD``, averaged over the batch
    (= :func:`fusedkd.dkd_loss` with ``reduction="batchmean"``).

    Args:
        logits_student: ``[N, C]`` student logits.
        logits_teacher: ``[N, C]`` teacher logits (a constant).
        target: ``[N]`` integer labels.
        alpha: weight of TCKD (configs: 1).
        beta: weight of NCKD (CIFAR configs: 8; ImageNet: 0.5).
        temperature: τ (CIFAR: 4; ImageNet: 1).
    """
    return _F.dkd_loss(logits_student, logits_teacher, target, alpha, beta, temperature)
