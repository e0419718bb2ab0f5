"""zju-SWJ/RLD's loss functions (``mdistiller/distillers/RLD.py``, and its ``KD.py`` / ``DKD.py`` with the
``logit_stand`` flag of "Logit Standardization in Knowledge Distillation", CVPR 2024) with their exact
signatures: the same parameter names and positional order, no defaults (the distillers pass every
value from their config), a scalar loss averaged over the batch.

``logit_stand=True`` standardizes both rows first: ``x̃ = (x − mean(x)) / (1e-7 + std(x))`` with
Bessel's correction, fused into the kernels for all three losses (``logit_standardization`` of
:func:`fusedkd.kd_loss`, :func:`fusedkd.dkd_loss`, :func:`fusedkd.rld_loss`).
"""

from __future__ import annotations

import torch

from .. import functional as _F
from .._checks import boolean as _boolean

__all__ = ["rld_loss", "kd_loss", "dkd_loss"]


def rld_loss(
    logits_student_in: torch.Tensor,
    logits_teacher_in: torch.Tensor,
    target: torch.Tensor,
    alpha: float,
    beta: float,
    temperature: float,
    logit_stand: bool,
    alpha_temperature: float,
) -> torch.Tensor:
    """RLD ``rld_loss``: ``α·SCD + β·MCD``, averaged over the batch (= :func:`fusedkd.rld_loss`).

    Args:
        logits_student_in: ``[N, C]`` student logits.
        logits_teacher_in: ``[N, C]`` teacher logits (a constant).
        target: ``[N]`` integer labels.
        alpha: weight of SCD (``CFG.RLD.ALPHA``, default config 1).
        beta: weight of MCD (``CFG.RLD.BETA``: 8; ImageNet 0.5).
        temperature: τ of MCD (``CFG.RLD.T``: 4; ImageNet 1).
        logit_stand: standardize both rows first (``CFG.EXPERIMENT.LOGIT_STAND``, default False).
        alpha_temperature: temperature of SCD (``CFG.RLD.ALPHA_T``: 1).
    """
    return _F.rld_loss(logits_student_in, logits_teacher_in, target, alpha, beta, temperature,
                       logit_standardization=_boolean(logit_stand, "logit_stand"),
                       alpha_temperature=alpha_temperature)


def kd_loss(
    logits_student_in: torch.Tensor,
    logits_teacher_in: torch.Tensor,
    temperature: float,
    logit_stand: bool,
) -> torch.Tensor:
    """The RLD repository's ``kd_loss``: ``τ² · mean_i KL(softmax(t̃_i/τ) ‖ softmax(s̃_i/τ))``, with
    ``s̃, t̃`` the standardized logits when ``logit_stand`` (else the logits).

    Args:
        logits_student_in: ``[N, C]`` student logits.
        logits_teacher_in: ``[N, C]`` teacher logits (a constant).
        temperature: τ.
        logit_stand: standardize both rows first.
    """
    return _F.kd_loss(logits_student_in, logits_teacher_in, temperature,
                      logit_standardization=_boolean(logit_stand, "logit_stand"))


def dkd_loss(
    logits_student_in: torch.Tensor,
    logits_teacher_in: torch.Tensor,
    target: torch.Tensor,
    alpha: float,
    beta: float,
    temperature: float,
    logit_stand: bool,
) -> torch.Tensor:
    """The RLD repository's ``dkd_loss``: ``α·TCKD + β·NCKD`` averaged over the batch, on the
    standardized logits when ``logit_stand``.

    Args:
        logits_student_in: ``[N, C]`` student logits.
        logits_teacher_in: ``[N, C]`` teacher logits (a constant).
        target: ``[N]`` integer labels.
        alpha: weight of TCKD.
        beta: weight of NCKD.
        temperature: τ.
        logit_stand: standardize both rows first.
    """
    return _F.dkd_loss(logits_student_in, logits_teacher_in, target, alpha, beta, temperature,
                       logit_standardization=_boolean(logit_stand, "logit_stand"))
