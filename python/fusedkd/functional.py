"""Functional API: fused knowledge-distillation losses with their gradients.

Every function takes logits ``[N, C]``, or token logits ``[..., V]`` with labels ``[...]`` (the
leading dimensions are flattened as views: a row is a token), in float32, float16, bfloat16 or
float64 (fp32 accumulation for the half types), returns the loss in float32 (float64 for float64
inputs) and has the defaults of the authors' reference code (see ``docs/math.md``,
``docs/math_token.md``). Reductions:

* ``"batchmean"`` — Σ_i ℓ_i / N, N counting rows whose label is not ``ignore_index``
  (0 when no row counts: an empty batch or every row ignored), or ``num_items_in_batch`` when it
  is given (Hugging Face's gradient-accumulation convention: an int or a 0-dim tensor, divided on
  the device, no host synchronization);
* ``"sum"`` — Σ_i ℓ_i;
* ``"none"`` — ℓ_i per row, 0 for ignored rows, in the logits' leading shape.

A teacher with more columns than the student (a padded embedding table) is passed as
``teacher_logits[..., :V]``: a strided view, read in place.

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

__all__ = ["kd_loss", "dkd_loss", "nkd_loss", "uskd_loss", "rld_loss", "forward_kl_loss", "reverse_kl_loss",
           "jsd_loss", "tvd_loss", "topk_kd_loss", "cross_entropy_loss", "tfnkd_loss"]


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
    """Integer labels [...]; soft labels [..., C] (mixup/cutmix) become their argmax."""
    target = _tensor(target, "target")
    if target.dim() >= 2 and target.dim() == student.dim() and target.is_floating_point():
        return _check_soft_labels(target, student).argmax(dim=-1)
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


def _softcap(value) -> float:
    """softcap=None (no capping) or c > 0, as the ops take it (0: none)."""
    if value is None:
        return 0.0
    c = _real(value, "softcap")
    if not (c > 0 and c != float("inf")):
        raise ValueError(f"softcap must be a positive finite number or None, got {c}")
    return c


def _beta(value) -> float:
    """JSD's β in [0, 1] (the op's check, made before choosing the op)."""
    b = _real(value, "beta")
    if not 0.0 <= b <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {b}")
    return b


def _num_items(value, reduction: str):
    """num_items_in_batch: None, a positive int, or a 0-dim tensor (left on its device)."""
    if value is None:
        return None
    if reduction != "batchmean":
        raise ValueError(f"num_items_in_batch is the divisor of reduction='batchmean', got reduction={reduction!r}")
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.is_complex() or value.dtype == torch.bool:
            raise ValueError(f"num_items_in_batch must be an int or a 0-dim real tensor, got a tensor of shape "
                             f"{list(value.shape)} and dtype {str(value.dtype).split('.')[-1]}")
        return value
    n = _integer(value, "num_items_in_batch")
    if n <= 0:
        raise ValueError(f"num_items_in_batch must be positive, got {n}")
    return n


def _check_row_shapes(s: torch.Tensor, x: torch.Tensor, name: str) -> None:
    """[..., C] logits of the same leading shape and, for a teacher, the same C, with a pointer to the
    slice that reads a padded teacher vocabulary in place."""
    if s.dim() < 2:
        raise ValueError(f"student_logits must have at least 2 dimensions [..., C], got {s.dim()} dimension(s)")
    if x.dim() < 2 or x.shape[:-1] != s.shape[:-1] or x.shape[-1] != s.shape[-1]:
        hint = ""
        if x.dim() == s.dim() and x.shape[:-1] == s.shape[:-1] and x.shape[-1] > s.shape[-1]:
            hint = (f"; for a teacher vocabulary padded beyond the student's, pass {name}[..., :{s.shape[-1]}] "
                    "(a view, read in place, never a copy)")
        raise ValueError(f"{name} has shape {list(x.shape)} but student_logits has shape {list(s.shape)}{hint}")


def _is_dtensor(x: torch.Tensor) -> bool:
    """Whether x is a torch.distributed DTensor (checked only for tensors that are not plain)."""
    if not torch.distributed.is_available():
        return False
    from . import distributed

    return distributed.is_dtensor(x)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """[..., C] as [N, C] rows: a view when the leading dimensions are mergeable (contiguous, or a
    column slice of a contiguous tensor), else a copy."""
    return x if x.dim() == 2 else x.reshape(-1, x.shape[-1])


def _loss(op_name: str, student_logits, second, labels, kwargs: dict) -> torch.Tensor:
    """The one call behind every public loss function: the arguments checked and ordered as the op's
    schema (``_ops.OP_ARGS``, generated from the loss's C++ descriptor) says, then the op with its
    autograd (``call_op``). ``kwargs`` holds the hyper-parameters, ``reduction``, for a loss with
    labels ``ignore_index``, and optionally ``num_items_in_batch``. Token logits ``[..., C]`` run as
    rows ``[N, C]``. Returns the loss."""
    spec = OP_ARGS[op_name]
    s = _tensor(student_logits, "student_logits")
    if type(s) is not torch.Tensor and _is_dtensor(s):  # Shard(-1) logits: the vocabulary-parallel path
        from . import distributed

        return distributed.dtensor_loss(op_name, s, second, labels, kwargs)
    x = None if spec.second is None else _on_student_device(s, _tensor(second, spec.second), spec.second)
    reduction = _reduction(kwargs["reduction"])
    num_items = _num_items(kwargs.get("num_items_in_batch"), reduction)
    lead = None
    if s.dim() != 2 or (x is not None and x.dim() != 2):  # token logits [..., C] (2-D inputs: the ops' messages)
        if x is not None:
            _check_row_shapes(s, x, spec.second)
        elif s.dim() < 2:
            raise ValueError(f"student_logits must have at least 2 dimensions [..., C], got {s.dim()} dimension(s)")
        lead = s.shape[:-1]
        s, x = _rows(s), None if x is None else _rows(x)
    differentiable = (s, x) if spec.differentiable > 1 else (s,)
    if x is not None and spec.differentiable < 2:
        x = _constant(x)
    args = [s] if x is None else [s, x]
    if spec.labels is not None:
        if labels is None and spec.labels_optional:
            args.append(None)
        else:
            y = _on_student_device(s, _tensor(labels, spec.labels), spec.labels)
            if lead is not None:
                if y.shape != lead:
                    raise ValueError(f"{spec.labels} must have the logits' leading shape {list(lead)}, got {list(y.shape)}")
                y = y.reshape(-1)
            args.append(y)
    args += [_PARAM_CHECKS[kind](kwargs[name], name) if name != "softcap" else _softcap(kwargs[name])
             for name, kind in spec.params]
    args.append("sum" if num_items is not None else reduction)
    if spec.labels is not None:
        args.append(_integer(kwargs["ignore_index"], "ignore_index"))
    args.append(_needs_grad(*differentiable))
    loss = call_op(op_name, *args)[0]
    if num_items is not None:
        loss = loss / num_items
    if reduction == "none" and lead is not None:
        loss = loss.reshape(lead)
    return loss



def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 4.0,
    logit_standardization: bool = False,
    reduction: str = "batchmean",
    num_items_in_batch: int | torch.Tensor | None = None,
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
        num_items_in_batch: optional divisor of ``"batchmean"`` instead of the count of rows (int or
            0-dim tensor, divided on the device; default None).

    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or ``[N]`` for ``"none"``.
    """
    return _loss("kd", student_logits, teacher_logits, None, dict(
        temperature=temperature, logit_standardization=logit_standardization, reduction=reduction,
        num_items_in_batch=num_items_in_batch))


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
    num_items_in_batch: int | torch.Tensor | None = None,
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
        num_items_in_batch: optional divisor of ``"batchmean"`` instead of the count of rows (int or
            0-dim tensor, divided on the device; default None).

    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or ``[N]`` for ``"none"``.
    """
    return _loss("dkd", student_logits, teacher_logits, target, dict(
        alpha=alpha, beta=beta, temperature=temperature, logit_standardization=logit_standardization,
        reduction=reduction, ignore_index=ignore_index, num_items_in_batch=num_items_in_batch))


def nkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    temperature: float = 1.0,
    gamma: float = 1.5,
    reduction: str = "batchmean",
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
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
        num_items_in_batch: optional divisor of ``"batchmean"`` instead of the count of rows (int or
            0-dim tensor, divided on the device; default None).

    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or ``[N]`` for ``"none"``.
    """
    s = _tensor(student_logits, "student_logits")
    return _loss("nkd", s, teacher_logits, _hard_labels(target, s), dict(
        temperature=temperature, gamma=gamma, reduction=reduction, ignore_index=ignore_index,
        num_items_in_batch=num_items_in_batch))


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
    num_items_in_batch: int | torch.Tensor | None = None,
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
        num_items_in_batch: optional divisor of ``"batchmean"`` instead of the count of rows (int or
            0-dim tensor, divided on the device; default None).

    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or ``[N]`` for ``"none"``.
    """
    return _loss("rld", student_logits, teacher_logits, target, dict(
        alpha=alpha, beta=beta, temperature=temperature, logit_standardization=logit_standardization,
        alpha_temperature=alpha_temperature, reduction=reduction, ignore_index=ignore_index,
        num_items_in_batch=num_items_in_batch))


def uskd_loss(
    student_logits: torch.Tensor,
    weak_logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 0.1,
    mu: float = 0.005,
    reduction: str = "batchmean",
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
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
        num_items_in_batch: optional divisor of ``"batchmean"`` instead of the count of rows (int or
            0-dim tensor, divided on the device; default None).

    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or ``[N]`` for ``"none"``.
    """
    s = _tensor(student_logits, "student_logits")
    w = _on_student_device(s, _tensor(weak_logits, "weak_logits"), "weak_logits")
    y = _on_student_device(s, _tensor(target, "target"), "target")
    if y.dim() >= 2 and y.dim() == s.dim() and y.is_floating_point():
        # Soft labels run the pure-PyTorch reference: the op's checks, made here.
        from . import reference

        reduction = _reduction(reduction)
        num_items = _num_items(num_items_in_batch, reduction)
        lead = s.shape[:-1]
        if s.dim() > 2:
            _check_row_shapes(s, w, "weak_logits")
            _check_soft_labels(y, s)
            s, w, y = _rows(s), _rows(w), _rows(y)
        _check_logits(s, "student_logits")
        _check_pair(s, w, "weak_logits")
        _check_soft_labels(y, s)
        if s.shape[1] < 2:
            raise ValueError(f"student_logits must have at least 2 classes (C) for this loss, got C = {s.shape[1]}")
        alpha, beta, mu = (_checks.finite(_real(v, n), n) for v, n in ((alpha, "alpha"), (beta, "beta"), (mu, "mu")))
        loss = reference.uskd_loss(s, w, y, alpha, beta, mu, "sum" if num_items is not None else reduction,
                                   _integer(ignore_index, "ignore_index"))
        if num_items is not None:
            return loss / num_items
        return loss.reshape(lead) if reduction == "none" else loss
    return _loss("uskd", s, w, y, dict(alpha=alpha, beta=beta, mu=mu, reduction=reduction, ignore_index=ignore_index,
                                       num_items_in_batch=num_items_in_batch))


_TOKEN_ARGS = """
        student_logits: ``[..., V]`` token logits (``[N, V]`` or ``[B, T, V]``); receive the gradient.
        teacher_logits: logits of the same shape on the same device (a padded teacher vocabulary as
            ``teacher_logits[..., :V]``, read in place); a constant.
        labels: optional ``[...]`` int64/int32 token labels (the logits' leading shape); rows equal to
            ``ignore_index`` count for nothing (other values must be in ``[0, V)``); None: every row counts."""
_TOKEN_TAIL = """
        reduction: ``"batchmean"`` (default: the sum over counted tokens divided by their number, or by
            ``num_items_in_batch``), ``"sum"`` or ``"none"`` (one loss per token, in the leading shape).
        ignore_index: label of the rows that do not count (default -100).
        num_items_in_batch: optional divisor of ``"batchmean"`` (int or 0-dim tensor, e.g. the tokens
            of all gradient-accumulation steps; default None).
        softcap: optional c > 0: both logits become ``c·tanh(x/c)`` first, inside the kernel (Gemma 2's
            ``final_logit_softcapping``; default None: no capping)."""


def _token_doc(fn, params: str, tail: str = _TOKEN_TAIL):
    fn.__doc__ = fn.__doc__.replace("    Args:\n", "    Args:" + _TOKEN_ARGS + params + tail + "\n", 1)
    return fn


_TEMPERATURE_ARGS = """
        temperature: τ > 0 dividing both logits (default 1.0, as TRL)."""
_TAU2_ARG = """
        temperature_squared: multiply the loss (and its gradient) by τ² (Hinton's and NeMo's convention;
            default False, as TRL)."""


def forward_kl_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 1.0,
    reduction: str = "batchmean",
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
    softcap: float | None = None,
    temperature_squared: bool = False,
) -> torch.Tensor:
    """Forward KL, per token row ``ℓ_i = KL(p ‖ q) = Σ_j p_j (log p_j − log q_j)`` with the teacher's
    ``p = softmax(t_i/τ)`` and the student's ``q = softmax(s_i/τ)``; gradient
    ``∂ℓ_i/∂s_ij = (1/τ)(q_j − p_j)``. No τ² factor unless ``temperature_squared``.

    Reference: TRL ``GKDTrainer.generalized_jsd_loss`` with ``beta=0`` (see :func:`jsd_loss`).

    Args:
    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or the leading shape for ``"none"``.
    """
    return _loss("forward_kl", student_logits, teacher_logits, labels, dict(
        temperature=temperature, temperature_squared=temperature_squared, softcap=softcap, reduction=reduction,
        ignore_index=ignore_index, num_items_in_batch=num_items_in_batch))


def reverse_kl_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 1.0,
    reduction: str = "batchmean",
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
    softcap: float | None = None,
    temperature_squared: bool = False,
) -> torch.Tensor:
    """Reverse KL, per token row ``ℓ_i = KL(q ‖ p) = Σ_j q_j (log q_j − log p_j)`` with the student's
    ``q = softmax(s_i/τ)`` and the teacher's ``p = softmax(t_i/τ)``; gradient
    ``∂ℓ_i/∂s_ij = (1/τ) q_j (log q_j − log p_j − ℓ_i)``. No τ² factor unless ``temperature_squared``.

    Reference: TRL ``GKDTrainer.generalized_jsd_loss`` with ``beta=1`` (see :func:`jsd_loss`).

    Args:
    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or the leading shape for ``"none"``.
    """
    return _loss("reverse_kl", student_logits, teacher_logits, labels, dict(
        temperature=temperature, temperature_squared=temperature_squared, softcap=softcap, reduction=reduction,
        ignore_index=ignore_index, num_items_in_batch=num_items_in_batch))


def jsd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    beta: float = 0.5,
    temperature: float = 1.0,
    reduction: str = "batchmean",
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
    softcap: float | None = None,
    temperature_squared: bool = False,
) -> torch.Tensor:
    """Generalized Jensen–Shannon divergence, exactly TRL's ``GKDTrainer.generalized_jsd_loss``: per
    token row, with ``q = softmax(s_i/τ)`` (student), ``p = softmax(t_i/τ)`` (teacher) and the mixture
    ``m = β p + (1 − β) q``, ``ℓ_i = β KL(p ‖ m) + (1 − β) KL(q ‖ m)``; ``beta = 0`` is forward KL
    ``KL(p ‖ q)`` and ``beta = 1`` reverse KL ``KL(q ‖ p)`` exactly (the mixed formula tends to 0 at both
    ends: the reference's discontinuity is kept). No τ² factor unless ``temperature_squared``.
    ``beta`` 0 and 1 run the two-pass forward / reverse KL ops, other values the three-pass JSD op.

    Reference: TRL ``trl/experimental/gkd/gkd_trainer.py`` ``GKDTrainer.generalized_jsd_loss`` (checked
    against that function itself, docs/math_token.md). Differences from TRL, all in the reduction: without labels TRL's ``"batchmean"`` divides by
    ``size(0)`` (the batch size of a 3-D input), here by the token count; TRL's ``"none"`` keeps the
    ``[..., V]`` elements, here one loss per token.

    Args:
        beta: β in [0, 1] (default 0.5).
    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or the leading shape for ``"none"``.
    """
    b = _beta(beta)
    op = "forward_kl" if b == 0.0 else "reverse_kl" if b == 1.0 else "jsd"
    params = dict(temperature=temperature, temperature_squared=temperature_squared, softcap=softcap,
                  reduction=reduction, ignore_index=ignore_index, num_items_in_batch=num_items_in_batch)
    if op == "jsd":
        params["beta"] = b
    return _loss(op, student_logits, teacher_logits, labels, params)


def tvd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 1.0,
    reduction: str = "batchmean",
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """Total variation distance, per token row ``ℓ_i = ½ Σ_j |p_j − q_j|`` with ``q = softmax(s_i/τ)``
    (student) and ``p = softmax(t_i/τ)`` (teacher); gradient
    ``∂ℓ_i/∂s_ij = (1/(2τ)) q_j (sgn(q_j − p_j) − Σ_k q_k sgn(q_k − p_k))`` (sgn 0 = 0).

    Reference: Liger-Kernel ``LigerTVDLoss``, which takes the two probability distributions; this takes
    logits and applies the softmaxes inside the kernel (docs/math_token.md).

    Args:
    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or the leading shape for ``"none"``.
    """
    return _loss("tvd", student_logits, teacher_logits, labels, dict(
        temperature=temperature, softcap=softcap, reduction=reduction, ignore_index=ignore_index,
        num_items_in_batch=num_items_in_batch))


_token_doc(forward_kl_loss, _TEMPERATURE_ARGS + _TAU2_ARG)
_token_doc(reverse_kl_loss, _TEMPERATURE_ARGS + _TAU2_ARG)
_token_doc(jsd_loss, "", _TEMPERATURE_ARGS + _TAU2_ARG + _TOKEN_TAIL)
_token_doc(tvd_loss, _TEMPERATURE_ARGS)


# topk_kd_loss's tail modes and their values in the op (include/fusedkd/losses/topk_kd.hpp, TopKTail).
TOPK_TAILS = {"ghost": 0, "renormalize": 1, "renormalize_both": 2, "none": 3}


def _tail(value) -> str:
    if not isinstance(value, str) or value not in TOPK_TAILS:
        raise ValueError(f"tail must be one of {', '.join(repr(t) for t in TOPK_TAILS)}, got {value!r}")
    return value


def topk_kd_loss(
    student_logits: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    teacher_topk_indices: torch.Tensor,
    labels: torch.Tensor | None = None,
    temperature: float = 1.0,
    tail: str = "ghost",
    reduction: str = "batchmean",
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """KD from a sparse teacher: its top-k log-probabilities ``log p_k`` at indices ``K`` per token (an
    offline cache or a served teacher), against the student's ``q = softmax(s_i/τ)`` over its full
    vocabulary. Forward KL on K, the teacher's values used as given (no τ on them):

    * ``"ghost"`` (default) — Megatron-LM ``topk_kl_div(add_ghost_token=True)``: the mass outside K is one
      more bucket on both sides, ``ℓ_i = Σ_K p_k log(p_k/q_k) + G log(G/R)`` with ``G = max(1 − P_K, 1e-8)``,
      ``R = max(1 − Q_K, 1e-8)`` (``1 − Q_K`` computed as ``−expm1(log Q_K)``, exact as ``Q_K → 1``);
      gradient ``q_j − p_j`` on K, ``q_j (1 − G/(1 − Q_K))`` off K (unclamped);
    * ``"renormalize"`` — the teacher renormalized over K (``p̂ = p / P_K``), the student over its full
      vocabulary: ``ℓ_i = Σ_K p̂_k log(p̂_k/q_k)`` (no anchor does exactly this; ../shared/spec/llm_losses.md);
    * ``"renormalize_both"`` — both renormalized over K: Model-Optimizer's ``TopKLogitsKLLoss`` on a given
      K, TRL server distillation with ``loss_add_tail=False``;
    * ``"none"`` — Megatron-LM ``topk_kl_div(add_ghost_token=False)``: ``Σ_K p_k log(p_k/q_k)``, nothing
      renormalized (can be negative).

    The student gradient is dense and is written in the loss's pass; no ``[N, V]`` teacher tensor is built.
    A teacher entry of ``-inf`` (a missing log-probability) has weight 0.

    Reference: Megatron-LM ``megatron/training/distillation/cached_logits_loss.py`` ``topk_kl_div`` (ghost,
    none), NVIDIA Model-Optimizer ``TopKLogitsKLLoss`` (renormalize_both); docs/math_token.md ("Top-k
    teacher") states every difference.

    Args:
        student_logits: ``[..., V]`` token logits; receive the gradient.
        teacher_topk_logprobs: ``[..., k]`` teacher log-probabilities (normalized over the teacher's
            vocabulary), any float dtype (used in float32; float64 with a float64 student); a constant.
        teacher_topk_indices: ``[..., k]`` int64/int32 vocabulary indices in ``[0, V)``, distinct per row.
            The CPU op checks them (an error names the row); on the GPU they are never read on the host: an
            index out of range makes its row NaN, duplicates are not detected (unspecified result).
        labels: optional ``[...]`` token labels; rows equal to ``ignore_index`` count for nothing (their
            indices are not read); default None: every row counts.
        temperature: τ > 0 dividing the student's logits (default 1.0).
        tail: ``"ghost"`` (default), ``"renormalize"``, ``"renormalize_both"`` or ``"none"``.
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``, as the other token losses.
        ignore_index: label of the rows that do not count (default -100).
        num_items_in_batch: optional divisor of ``"batchmean"`` (int or 0-dim tensor; default None).
        softcap: optional c > 0: the student's logits become ``c·tanh(s/c)`` first (the teacher's values
            are log-probabilities, already final; default None: no capping).
    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or the leading shape for ``"none"``.
    """
    s = _tensor(student_logits, "student_logits")
    if type(s) is not torch.Tensor and _is_dtensor(s):  # Shard(-1) logits: the vocabulary-parallel path
        from . import distributed

        return distributed.dtensor_topk_kd_loss(s, teacher_topk_logprobs, teacher_topk_indices, labels, temperature,
                                                tail, reduction, ignore_index, num_items_in_batch, softcap)
    lp = _on_student_device(s, _tensor(teacher_topk_logprobs, "teacher_topk_logprobs"), "teacher_topk_logprobs")
    idx = _on_student_device(s, _tensor(teacher_topk_indices, "teacher_topk_indices"), "teacher_topk_indices")
    if s.dim() < 2:
        raise ValueError(f"student_logits must have at least 2 dimensions [..., V], got {s.dim()} dimension(s)")
    if lp.dim() != s.dim() or lp.shape[:-1] != s.shape[:-1]:
        raise ValueError(f"teacher_topk_logprobs has shape {list(lp.shape)} but student_logits has shape "
                         f"{list(s.shape)}: they must share the leading dimensions ([..., k] and [..., V])")
    if idx.shape != lp.shape:
        raise ValueError(f"teacher_topk_indices has shape {list(idx.shape)} but teacher_topk_logprobs has shape "
                         f"{list(lp.shape)}")
    if s.dtype not in _LOGIT_DTYPES:
        raise TypeError(f"student_logits must be float32, float16, bfloat16 or float64, got {str(s.dtype).split('.')[-1]}")
    if not lp.is_floating_point():
        raise TypeError(f"teacher_topk_logprobs must be a floating tensor, got {str(lp.dtype).split('.')[-1]}")
    if idx.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"teacher_topk_indices must be int64 or int32, got {str(idx.dtype).split('.')[-1]}")
    tail_value = TOPK_TAILS[_tail(tail)]
    reduction = _reduction(reduction)
    num_items = _num_items(num_items_in_batch, reduction)
    lead = s.shape[:-1]
    k = lp.shape[-1]
    s = _rows(s)
    lp = _constant(lp).reshape(-1, k).to(torch.float64 if s.dtype == torch.float64 else torch.float32)
    idx = idx.reshape(-1, k)
    y = None
    if labels is not None:
        y = _on_student_device(s, _tensor(labels, "labels"), "labels")
        if y.shape != lead:
            raise ValueError(f"labels must have the logits' leading shape {list(lead)}, got {list(y.shape)}")
        y = y.reshape(-1)
    args = [s, lp, idx, y, _real(temperature, "temperature"), tail_value, _softcap(softcap),
            "sum" if num_items is not None else reduction, _integer(ignore_index, "ignore_index"), _needs_grad(s)]
    loss = call_op("topk_kd", *args)[0]
    if num_items is not None:
        loss = loss / num_items
    if reduction == "none":
        loss = loss.reshape(lead)
    return loss


def cross_entropy_loss(
    student_logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "batchmean",
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Hard-label cross-entropy of the student, per row ``ℓ_i = −log softmax(s_i)_y = lse(s_i) − s_iy``
    (computed so, not as ``log(softmax)``: no ``−inf`` where ``p_y`` underflows); gradient
    ``∂ℓ_i/∂s_ij = p_j − δ_jy`` written in the same pass. The hard term of a distillation objective and
    tf-NKD's row program (:func:`tfnkd_loss`).

    Reference: ``torch.nn.functional.cross_entropy`` (``"batchmean"`` is its ``"mean"`` over the rows that
    count).

    Args:
        student_logits: ``[..., C]`` logits; receive the gradient.
        target: ``[...]`` int64/int32 labels in ``[0, C)`` or ``ignore_index``.
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``.
        ignore_index: label of the rows that count for nothing (default -100).
        num_items_in_batch: optional divisor of ``"batchmean"`` (int or 0-dim tensor; default None).
    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or the leading shape for ``"none"``.
    """
    return _loss("cross_entropy", student_logits, None, target, dict(
        reduction=reduction, ignore_index=ignore_index, num_items_in_batch=num_items_in_batch))


def _tfnkd_rows(s: torch.Tensor, target: torch.Tensor, ignore_index: int, mean_p: torch.Tensor | None = None):
    """tf-NKD's rows ``w_i ce_i`` (0 for ignored rows) and the count of rows that count. ``mean_p``: the
    batch mean of ``p_i`` when it is known beforehand (the fused linear head, whose chunks each see part
    of the batch); by default that of these rows."""
    ce = cross_entropy_loss(s, target, reduction="none", ignore_index=ignore_index)
    with torch.no_grad():
        valid = target != ignore_index
        p = torch.where(valid, torch.exp(-ce), torch.zeros_like(ce))
        counted = valid.sum()
        if mean_p is None:
            mean_p = p.sum() / counted.clamp_min(1)
        w = torch.where(valid, p + 1 - mean_p, torch.zeros_like(p))
    return w * ce, counted


def tfnkd_loss(
    student_logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "batchmean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Teacher-free NKD (tf-NKD, the NKD paper's v1), per row ``ℓ_i = −w_i log p_i`` with the student's
    ``p_i = softmax(s_i)_y`` and the detached weight ``w_i = p_i + 1 − mean_j p_j`` (mean over the batch's
    counted rows); gradient ``w_i (softmax(s_i) − e_y)``. No hyper-parameters; the trainer adds it to the
    student's CE with weight 1.

    Hard labels run the fused cross-entropy op (:func:`cross_entropy_loss`, its rows and their gradient
    in one pass), weighted here: backward rescales the saved gradient rows by ``w_i / N`` (one pass).
    Soft labels ``[..., C]`` (mixup / cutmix) take the reference path (``fusedkd.reference.tfnkd_loss``:
    the top two labels, each with ``w = p + value − mean p``).

    Reference: cls_KD ``mmcls/distillation/distillers/classification_distiller.py`` (commits 8a16562 …
    de48db4; removed in 87a7197 when USKD replaced it); ../shared/spec/losses.md.

    Args:
        student_logits: ``[..., C]`` logits; receive the gradient.
        target: ``[...]`` int64/int32 labels (``ignore_index`` rows count for nothing), or soft labels
            ``[..., C]``.
        reduction: ``"batchmean"`` (default: ``Σ_i ℓ_i / N`` over the counted rows, as the reference),
            ``"sum"`` or ``"none"``.
        ignore_index: label of the rows that count for nothing (default -100).
    Returns:
        The loss in float32 (float64 for float64 logits): a scalar, or the leading shape for ``"none"``.
    """
    s = _tensor(student_logits, "student_logits")
    target = _tensor(target, "target")
    reduction = _reduction(reduction)
    if target.is_floating_point() and target.dim() >= 2 and target.dim() == s.dim():
        from . import reference

        return reference.tfnkd_loss(s, _check_soft_labels(target, s), reduction, ignore_index)
    rows, counted = _tfnkd_rows(s, target, ignore_index)
    if reduction == "none":
        return rows
    total = rows.sum()
    return total if reduction == "sum" else total / counted.clamp_min(1).to(total.dtype)
