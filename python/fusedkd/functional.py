"""Functional API: fused knowledge-distillation losses with their gradients.

Every function takes logits ``[N, C]`` (float32, float16, bfloat16 or float64; fp32
accumulation for the half types), returns the loss in float32 (float64 for float64 inputs) and
has the defaults of the authors' reference code (see ``docs/math.md``). Reductions:

* ``"batchmean"`` — Σ_i ℓ_i / N, N counting rows whose label is not ``ignore_index``
  (0 when no row counts: an empty batch or every row ignored);
* ``"sum"`` — Σ_i ℓ_i;
* ``"none"`` — ℓ_i per row, 0 for ignored rows.

``"mean"`` is rejected (``F.kl_div``'s would divide by N·C, ``F.cross_entropy``'s by N: use
``"batchmean"``). Hyper-parameters are type-checked (``fusedkd._checks``): real numbers (a tensor
that requires grad is an error), ``ignore_index`` an int64, flags bools.

Gradients flow to the student logits only; the teacher is a constant, as in every reference.
"""

from __future__ import annotations

import torch

from . import _checks
from ._checks import boolean as _boolean
from ._checks import integer as _integer
from ._checks import real as _real
from ._checks import reduction as _reduction
from ._ops import OP_ARGS, call_op

__all__ = ["kd_loss", "dkd_loss", "nkd_loss", "uskd_loss", "rld_loss", "reverse_kl_loss"]


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
    keeps no graph alive through the loss). Detached only when it requires grad: a detached view has a
    per-call cost through the op's autograd (docs/performance.md)."""
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


# The type check of a hyper-parameter, by its schema type.
_PARAM_CHECKS = {"float": _real, "bool": _boolean, "int": _integer}


def _loss(op_name: str, student_logits, second, labels, kwargs: dict) -> torch.Tensor:
    """The one call behind every public loss function: the arguments checked and ordered as the op's
    schema (``_ops.OP_ARGS``, generated from the loss's C++ descriptor) says, then the op with its
    autograd (``call_op``). ``kwargs`` holds the hyper-parameters, ``reduction`` and, for a loss with
    labels, ``ignore_index``. Returns the loss."""
    spec = OP_ARGS[op_name]
    s = _tensor(student_logits, "student_logits")
    x = _on_student_device(s, _tensor(second, spec.second), spec.second)
    differentiable = (s, x) if spec.differentiable > 1 else (s,)
    if spec.differentiable < 2:
        x = _constant(x)
    args = [s, x]
    if spec.labels is not None:
        args.append(None if labels is None and spec.labels_optional
                    else _on_student_device(s, _tensor(labels, spec.labels), spec.labels))
    args += [_PARAM_CHECKS[kind](kwargs[name], name) for name, kind in spec.params]
    args.append(_reduction(kwargs["reduction"]))
    if spec.labels is not None:
        args.append(_integer(kwargs["ignore_index"], "ignore_index"))
    args.append(_needs_grad(*differentiable))
    return call_op(op_name, *args)[0]



def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 4.0,
    logit_standardization: bool = False,
    reduction: str = "batchmean",
) -> torch.Tensor:
    """Hinton KD, per row ``ℓ_i = τ² · KL(softmax(t_i/τ) ‖ softmax(s_i/τ))
    = τ² Σ_j p_t,j (log p_t,j − log p_s,j)``; gradient ``∂ℓ_i/∂s_ij = τ (p_s,j − p_t,j)``. With
    ``logit_standardization`` both rows are first mapped to ``(x − mean x) / (1e-7 + std x)``
    (Bessel-corrected std) and the gradient is chained through that map.

    Reference: mdistiller ``mdistiller/distillers/KD.py`` ``kd_loss`` (its ``.sum(1).mean()`` is
    ``"batchmean"``); the trainer's ``0.1·CE + 0.9·KD`` weighting is the caller's. Standardization:
    zju-SWJ/RLD's ``KD.py`` ``kd_loss(logits_student, logits_teacher, temperature, logit_stand)``
    ("Logit Standardization in Knowledge Distillation", CVPR 2024), same positional order.

    Args:
        student_logits: ``[N, C]`` float32/float16/bfloat16/float64 logits; receive the gradient.
        teacher_logits: ``[N, C]`` logits on the same device (float64 only with float64); a constant.
        temperature: τ > 0 (default 4.0).
        logit_standardization: standardize both rows first (default False; a bool).
        reduction: ``"batchmean"`` (default: mean over rows), ``"sum"`` or ``"none"`` (per row).

    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or ``[N]`` for ``"none"``.
    """
    return _loss("kd", student_logits, teacher_logits, None, dict(
        temperature=temperature, logit_standardization=logit_standardization, reduction=reduction))


def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
    logit_standardization: bool = False,
    reduction: str = "batchmean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Decoupled KD, per row ``ℓ_i = α·TCKD + β·NCKD`` with, at temperature τ,
    ``TCKD = τ² KL(b_t ‖ b_s)`` on the binary [target, non-target] distributions
    ``b = [p_y, Σ_{j≠y} p_j]`` and ``NCKD = τ² KL(q_t ‖ q_s)`` on the non-target softmax
    ``q_j = exp(x_j/τ) / Σ_{k≠y} exp(x_k/τ)``.

    Reference: mdistiller ``mdistiller/distillers/DKD.py`` ``dkd_loss`` (CIFAR defaults; the
    ImageNet configs use ``beta=0.5, temperature=1``); the warm-up ``min(epoch/20, 1)`` and CE
    are the caller's. ``logit_standardization``: zju-SWJ/RLD's ``DKD.py`` ``dkd_loss(..., temperature,
    logit_stand)``, both rows mapped to ``(x − mean x) / (1e-7 + std x)`` (Bessel std) first.

    Args:
        student_logits: ``[N, C]`` logits (C ≥ 2); receive the gradient.
        teacher_logits: ``[N, C]`` logits; a constant.
        target: ``[N]`` int64/int32 labels in ``[0, C)`` or ``ignore_index``.
        alpha: weight α of TCKD (default 1.0).
        beta: weight β of NCKD (default 8.0).
        temperature: τ > 0 (default 4.0).
        logit_standardization: standardize both rows first (default False; a bool).
        reduction: ``"batchmean"`` (default: mean over the rows that count), ``"sum"`` or ``"none"``.
        ignore_index: label whose rows count for nothing (loss 0, gradient 0; default -100).

    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or ``[N]`` for ``"none"``.
    """
    return _loss("dkd", student_logits, teacher_logits, target, dict(
        alpha=alpha, beta=beta, temperature=temperature, logit_standardization=logit_standardization,
        reduction=reduction, ignore_index=ignore_index))


def nkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    temperature: float = 1.0,
    gamma: float = 1.5,
    reduction: str = "batchmean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Normalized KD, per row ``ℓ_i = −p_t,y log p_s,y − γ τ² Σ_{j≠y} q_t,j log q_s,j``: the target
    term at temperature 1 (``p = softmax(x)``, ``p_t,y`` a constant), the non-target term a
    cross-entropy of the non-target softmaxes ``q`` at τ (not a KL: the teacher's entropy is kept).

    Reference: cls_KD ``mmcls/models/dis_losses/nkd.py`` (the later revision, whose mask drops the
    target class).

    Args:
        student_logits: ``[N, C]`` logits (C ≥ 2); receive the gradient.
        teacher_logits: ``[N, C]`` logits; a constant.
        target: ``[N]`` integer labels, or soft labels ``[N, C]`` (mixup/cutmix) reduced to their argmax
            as the reference does (every row counts then).
        temperature: τ of the non-target term (default 1.0).
        gamma: γ (default 1.5).
        reduction: ``"batchmean"`` (default: mean over the rows that count), ``"sum"`` or ``"none"``.
        ignore_index: label whose rows count for nothing (default -100).

    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or ``[N]`` for ``"none"``.
    """
    s = _tensor(student_logits, "student_logits")
    return _loss("nkd", s, teacher_logits, _hard_labels(target, s), dict(
        temperature=temperature, gamma=gamma, reduction=reduction, ignore_index=ignore_index))


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
    """Refined logit distillation, per row ``ℓ_i = α·SCD + β·MCD``:
    ``SCD = α_τ² KL(b_t ‖ b_s)`` at temperature α_τ, with the student's binary split around the label
    ``b_s = [p_s,y, Σ_{j≠y} p_s,j]`` and the teacher's around its own top class
    ``b_t = [p_t,m, Σ_{j≠m} p_t,j]``, ``m = argmax t`` (first on ties); ``MCD = τ² KL(r_t ‖ r_s)`` on
    the softmaxes at τ restricted to ``K = {j : t_j < t_y}`` (0 when K is empty). With
    ``logit_standardization`` both rows are first mapped to ``(x − mean x) / (1e-7 + std x)``
    (Bessel-corrected std).

    Reference: zju-SWJ/RLD ``mdistiller/distillers/RLD.py`` ``rld_loss``, same positional order
    (``..., temperature, logit_stand, alpha_temperature``); defaults from its ``cfg.py``.

    Args:
        student_logits: ``[N, C]`` logits (C ≥ 2); receive the gradient.
        teacher_logits: ``[N, C]`` logits; a constant.
        target: ``[N]`` integer labels in ``[0, C)`` or ``ignore_index``.
        alpha: weight α of SCD (default 1.0).
        beta: weight β of MCD (default 8.0; the ImageNet configs use 0.5 with ``temperature=1``).
        temperature: τ of MCD (default 4.0).
        logit_standardization: standardize both rows first (default False; a bool).
        alpha_temperature: temperature α_τ of SCD (default 1.0).
        reduction: ``"batchmean"`` (default: mean over the rows that count), ``"sum"`` or ``"none"``.
        ignore_index: label whose rows count for nothing (default -100).

    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or ``[N]`` for ``"none"``.
    """
    return _loss("rld", student_logits, teacher_logits, target, dict(
        alpha=alpha, beta=beta, temperature=temperature, logit_standardization=logit_standardization,
        alpha_temperature=alpha_temperature, reduction=reduction, ignore_index=ignore_index))


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
    """Teacher-free USKD, per row ``ℓ_i = α·T + β·NT + W``, all at temperature 1:
    ``T = −soft_i log p_s,y`` with the constant ``soft_i = u_i + 1 − mean_i u_i``, ``u_i = p_s,y²``
    (mean over the rows that count); ``W = −μ Σ_j smooth_j log p_w,j`` with
    ``smooth = 0.9·onehot(y) + 0.1/C``; ``NT = −Σ_{j≠y} z_j log q_s,j`` with Zipf weights
    ``z ∝ 1/(rank+1)`` of the score ``p_w,j/(1 − p_w,y + 1e-6) + log p_s,j/(1 − log p_s,y + 1e-6)``
    (descending, ties to the lower class index), the target dropped and renormalized.

    Reference: cls_KD ``mmcls/models/dis_losses/uskd.py`` (its module's ``fc`` is the caller's here:
    see :class:`fusedkd.USKDLoss`). Gradients flow to ``student_logits`` and ``weak_logits``.

    Args:
        student_logits: ``[N, C]`` logits (C ≥ 2).
        weak_logits: ``[N, C]`` weak-head logits ``fc(feature)`` (float64 only with float64).
        target: ``[N]`` integer labels, or soft labels ``[N, C]`` (mixup/cutmix: the top two labels
            with their values, as the reference; this path runs the pure-PyTorch reference, not fused).
        alpha: weight α of the target term (default 1.0).
        beta: weight β of the Zipf non-target term (default 0.1).
        mu: weight μ of the weak supervision (default 0.005).
        reduction: ``"batchmean"`` (default: mean over the rows that count), ``"sum"`` or ``"none"``.
        ignore_index: label whose rows count for nothing, in the batch mean of ``u`` too (default -100).

    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or ``[N]`` for ``"none"``.
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
        return reference.uskd_loss(s, w, y, alpha, beta, mu, _reduction(reduction),
                                   _integer(ignore_index, "ignore_index"))
    return _loss("uskd", s, w, y, dict(alpha=alpha, beta=beta, mu=mu, reduction=reduction, ignore_index=ignore_index))


def reverse_kl_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 1.0,
    reduction: str = "batchmean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Reverse KL, per token row ``ℓ_i = KL(q ‖ p) = Σ_j q_j (log q_j − log p_j)`` with the student's
    ``q = softmax(s_i/τ)`` and the teacher's ``p = softmax(t_i/τ)``; gradient
    ``∂ℓ_i/∂s_ij = (1/τ) q_j (log q_j − log p_j − ℓ_i)``. No τ² factor.

    Reference: TRL ``GKDTrainer.generalized_jsd_loss`` with ``beta=1`` (TRL's default), whose
    ``"batchmean"`` divides by the number of tokens whose label is not ``ignore_index`` (by the
    number of rows without labels). Difference: TRL's ``"none"`` returns the ``[N, V]`` elements;
    here it is one loss per row, 0 for ignored rows.

    Args:
        student_logits: ``[N, V]`` token logits; receive the gradient.
        teacher_logits: ``[N, V]`` logits on the same device; a constant.
        labels: optional ``[N]`` int64/int32 token labels; rows equal to ``ignore_index`` count for
            nothing (other values must be in ``[0, V)``); default None: every row counts.
        temperature: τ > 0 (default 1.0).
        reduction: ``"batchmean"`` (default: mean over the rows that count), ``"sum"`` or ``"none"``.
        ignore_index: label of the rows that do not count (default -100).

    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or ``[N]`` for ``"none"``.
    """
    return _loss("reverse_kl", student_logits, teacher_logits, labels, dict(
        temperature=temperature, reduction=reduction, ignore_index=ignore_index))
