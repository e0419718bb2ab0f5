"""Functional API: fused knowledge-distillation losses with their gradients.

Every function takes logits ``[N, C]`` (float32, float16, bfloat16 or float64; fp32
accumulation for the half types), returns the loss in float32 (float64 for float64 inputs) and
has the defaults of the authors' reference code (see ``docs/math.md``). Reductions:

* ``"batchmean"`` — Σ_i ℓ_i / N, N counting rows whose label is not ``ignore_index``
  (0 when no row counts: an empty batch or every row ignored);
* ``"sum"`` — Σ_i ℓ_i;
* ``"none"`` — ℓ_i per row, 0 for ignored rows.

Gradients flow to the student logits only; the teacher is a constant, as in every reference.
"""

from __future__ import annotations

import torch

from . import _checks
from ._checks import boolean as _boolean
from ._checks import integer as _integer
from ._checks import real as _real
from ._checks import reduction as _reduction
from ._ops import call_op

__all__ = ["kd_loss", "dkd_loss", "nkd_loss", "uskd_loss", "rld_loss"]


def _tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def _on_student_device(student: torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    if x.device != student.device:
        raise ValueError(f"{name} is on a different device than student_logits ({x.device} vs {student.device})")
    return x


def _constant(x: torch.Tensor) -> torch.Tensor:
    """x cut from the autograd graph (the teacher gets no gradient, and a teacher run with grad enabled
    keeps no graph alive through the loss). Detached only when it requires grad: a detached view costs
    ~8 µs per call through the op's autograd (measured on the CPU at [8, 10])."""
    return x.detach() if x.requires_grad else x


def _needs_grad(*xs: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and any(x.requires_grad for x in xs)


def _check_soft_labels(target: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    if target.shape != student.shape:
        raise ValueError(f"target as soft labels must have shape {list(student.shape)}, got {list(target.shape)}")
    return target


def _hard_labels(target: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """Integer labels [N]; a soft-label matrix [N, C] (mixup/cutmix) becomes its argmax."""
    target = _tensor(target, "target")
    if target.dim() == 2 and target.is_floating_point():
        return _check_soft_labels(target, student).argmax(dim=1)
    return target


_LOGIT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _check_logits(x: torch.Tensor, name: str) -> None:
    # The C++ ops' messages (bindings/checks.hpp), for the path that runs no op.
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D [N, C], got {x.dim()} dimension(s)")
    if x.dtype not in _LOGIT_DTYPES:
        raise TypeError(f"{name} must be float32, float16, bfloat16 or float64, got {str(x.dtype).split('.')[-1]}")


def _check_pair(student: torch.Tensor, other: torch.Tensor, name: str) -> None:
    _check_logits(other, name)
    if other.shape != student.shape:
        raise ValueError(f"{name} has shape {list(other.shape)} but student_logits has shape {list(student.shape)}")
    if (other.dtype == torch.float64) != (student.dtype == torch.float64):
        raise TypeError(
            f"{name} is {str(other.dtype).split('.')[-1]} but student_logits is {str(student.dtype).split('.')[-1]}: "
            "float64 inputs must both be float64"
        )


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 4.0,
    reduction: str = "batchmean",
) -> torch.Tensor:
    """Hinton KD: ``τ² · KL(softmax(t/τ) ‖ softmax(s/τ))`` per row (mdistiller ``kd_loss``)."""
    s = _tensor(student_logits, "student_logits")
    t = _constant(_on_student_device(s, _tensor(teacher_logits, "teacher_logits"), "teacher_logits"))
    loss, _ = call_op("kd", s, t, _real(temperature, "temperature"), _reduction(reduction), _needs_grad(s))
    return loss


def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
    reduction: str = "batchmean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Decoupled KD: ``α·TCKD + β·NCKD`` (mdistiller ``dkd_loss``; CIFAR defaults)."""
    s = _tensor(student_logits, "student_logits")
    t = _constant(_on_student_device(s, _tensor(teacher_logits, "teacher_logits"), "teacher_logits"))
    y = _on_student_device(s, _tensor(target, "target"), "target")
    loss, _ = call_op(
        "dkd", s, t, y, _real(alpha, "alpha"), _real(beta, "beta"), _real(temperature, "temperature"), _reduction(reduction), _integer(ignore_index, "ignore_index"), _needs_grad(s)
    )
    return loss


def nkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    temperature: float = 1.0,
    gamma: float = 1.5,
    reduction: str = "batchmean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Normalized KD (cls_KD ``NKDLoss``): target term at τ=1 plus γτ² × non-target cross-entropy.

    ``target`` may be labels ``[N]`` or soft labels ``[N, C]`` (mixup/cutmix), reduced to their
    argmax as the reference does.
    """
    s = _tensor(student_logits, "student_logits")
    t = _constant(_on_student_device(s, _tensor(teacher_logits, "teacher_logits"), "teacher_logits"))
    y = _on_student_device(s, _hard_labels(target, s), "target")
    loss, _ = call_op(
        "nkd", s, t, y, _real(temperature, "temperature"), _real(gamma, "gamma"), _reduction(reduction), _integer(ignore_index, "ignore_index"), _needs_grad(s)
    )
    return loss


def rld_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
    logit_standardization: bool = False,
    alpha_temperature: float = 1.0,
    reduction: str = "batchmean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Refined logit distillation (zju-SWJ/RLD): ``α·SCD + β·MCD``, optionally on standardized logits."""
    s = _tensor(student_logits, "student_logits")
    t = _constant(_on_student_device(s, _tensor(teacher_logits, "teacher_logits"), "teacher_logits"))
    y = _on_student_device(s, _tensor(target, "target"), "target")
    loss, _ = call_op(
        "rld", s, t, y, _real(alpha, "alpha"), _real(beta, "beta"), _real(temperature, "temperature"), _real(alpha_temperature, "alpha_temperature"),
        _boolean(logit_standardization, "logit_standardization"), _reduction(reduction), _integer(ignore_index, "ignore_index"), _needs_grad(s),
    )
    return loss


def uskd_loss(
    student_logits: torch.Tensor,
    weak_logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 0.1,
    mu: float = 0.005,
    reduction: str = "batchmean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Teacher-free USKD (cls_KD ``USKDLoss``) given the weak logits ``w = fc(feature)``.

    Gradients flow to both ``student_logits`` and ``weak_logits``. Hard labels run the fused op;
    soft labels ``[N, C]`` (mixup/cutmix, top-two labels as in the reference) run the pure-PyTorch
    reference path (not fused).
    """
    s = _tensor(student_logits, "student_logits")
    w = _on_student_device(s, _tensor(weak_logits, "weak_logits"), "weak_logits")
    y = _on_student_device(s, _tensor(target, "target"), "target")
    if y.dim() == 2 and y.is_floating_point():
        # Soft labels run the pure-PyTorch reference: the op's checks, made here.
        from . import reference

        _check_logits(s, "student_logits")
        _check_pair(s, w, "weak_logits")
        _check_soft_labels(y, s)
        if s.shape[1] < 2:
            raise ValueError(f"student_logits must have at least 2 classes (C) for this loss, got C = {s.shape[1]}")
        alpha, beta, mu = (_checks.finite(_real(v, n), n) for v, n in ((alpha, "alpha"), (beta, "beta"), (mu, "mu")))
        return reference.uskd_loss(s, w, y, alpha, beta, mu, _reduction(reduction), _integer(ignore_index, "ignore_index"))
    loss, _, _ = call_op(
        "uskd", s, w, y, _real(alpha, "alpha"), _real(beta, "beta"), _real(mu, "mu"), _reduction(reduction), _integer(ignore_index, "ignore_index"), _needs_grad(s, w)
    )
    return loss
