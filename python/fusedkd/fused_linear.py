"""Fused linear head + distillation loss: the ``[tokens, vocab]`` logits never exist in full.

For hidden states ``h`` (student) and ``g`` (teacher) and heads ``W_s, b_s``, ``W_t, b_t``:

    s_i = h_i W_sᵀ + b_s,   t_i = g_i W_tᵀ + b_t   (the teacher under no_grad)
    L   = (w_hard Σ_i CE(s_i, y_i) + w_soft Σ_i ℓ_i) / D

with ``ℓ_i`` the chosen fusedkd loss of token ``i``, ``y`` the true labels, and ``D`` the number of
tokens whose label is not ``ignore_index`` (``num_items_in_batch`` when given; 1 when no token counts,
so that ``L = 0``). This is Liger-Kernel's ``LigerFusedLinearDistillationBase`` weighting: its hard and
soft terms are both sums divided by the count of non-ignored labels.

The tokens are processed in chunks of ``chunk_size`` rows. Per chunk ``c``:

1. the two head GEMMs ``s_c = h_c W_sᵀ + b_s``, ``t_c = g_c W_tᵀ + b_t`` (torch: cuBLAS on the GPU);
2. the soft term's fused op on ``(s_c, t_c)``, then the cross-entropy's on ``s_c``: each writes its loss and
   its closed-form gradient in one pass, and ``G_c = w_soft ∂ℓ/∂s_c + w_hard ∂CE/∂s_c`` is summed in place
   (``t_c`` is freed after the first, so a chunk holds at most three ``[rows, V]`` buffers);
3. ``grad_h[c] = G_c W_s``, ``grad_W_s += G_cᵀ h_c``, ``grad_b_s += Σ_rows G_c`` — the weight and bias
   gradients accumulated in ``accumulation_dtype`` (float32 by default).

Everything is computed in the forward; backward multiplies the saved gradients by ``grad_output``.
Nothing reads a device value on the host: the token count and ``1/D`` stay tensors, the chunk bounds
come from shapes. tf-NKD's weights use the batch mean of ``p_y``, so it makes one more pass over the
chunks first (the student GEMM and the cross-entropy rows, no gradient).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect

import torch
from torch.nn import functional as torch_F

from . import _checks
from . import functional as F
from ._ops import _is_eager_cpu_one

__all__ = ["fused_linear_distillation_loss", "default_chunk_size", "FUSED_LINEAR_LOSSES", "CHUNK_BYTES"]

#: The memory a chunk's temporaries may take: the student's logits and their gradient, the teacher's
#: logits (and, on the CPU with half-precision weights, the gradient converted for the float32 GEMM).
CHUNK_BYTES = 512 * 2**20
#: Chunk sizes of at least this many rows are rounded down to a multiple of it (GEMM tiles).
CHUNK_ROW_MULTIPLE = 64


@dataclasses.dataclass(frozen=True)
class _SoftLoss:
    """How the fused head calls one fusedkd loss on a chunk of logits."""

    fn: object  # the functional loss (fusedkd.functional)
    teacher: str  # "logits" (teacher_input @ teacher_weightᵀ), "topk" (given log-probs + indices) or "none"
    labels: bool  # takes the labels and ignore_index (False: ignored rows are masked here, reduction "none")


FUSED_LINEAR_LOSSES = {
    "kd": _SoftLoss(F.kd_loss, "logits", labels=False),
    "dkd": _SoftLoss(F.dkd_loss, "logits", labels=True),
    "nkd": _SoftLoss(F.nkd_loss, "logits", labels=True),
    "rld": _SoftLoss(F.rld_loss, "logits", labels=True),
    "forward_kl": _SoftLoss(F.forward_kl_loss, "logits", labels=True),
    "reverse_kl": _SoftLoss(F.reverse_kl_loss, "logits", labels=True),
    "jsd": _SoftLoss(F.jsd_loss, "logits", labels=True),
    "tvd": _SoftLoss(F.tvd_loss, "logits", labels=True),
    "topk_kd": _SoftLoss(F.topk_kd_loss, "topk", labels=True),
    "tfnkd": _SoftLoss(F.tfnkd_loss, "none", labels=True),
}

# Soft terms whose rows are defined by the labels.
_NEEDS_LABELS = ("dkd", "nkd", "rld", "tfnkd")

# Arguments of the losses that the fused head sets itself.
_RESERVED = {"reduction", "ignore_index", "num_items_in_batch", "labels", "target"}
_TENSOR_ARGS = {"student_logits", "teacher_logits", "teacher_topk_logprobs", "teacher_topk_indices", "weak_logits"}


def _loss_kwargs(name: str, spec: _SoftLoss, kwargs: dict) -> dict:
    accepted = [p for p in inspect.signature(spec.fn).parameters if p not in _RESERVED | _TENSOR_ARGS]
    for key in kwargs:
        if key not in accepted:
            raise TypeError(f"loss={name!r} takes no argument {key!r}; its arguments: {', '.join(accepted) or 'none'} "
                            "(reduction, ignore_index and num_items_in_batch belong to the fused head)")
    return dict(kwargs)


def _loss_spec(loss: object) -> _SoftLoss:
    if loss == "uskd":
        raise ValueError("loss='uskd' is not supported by the fused linear head: USKD takes the weak logits of a "
                         "second head and the batch mean of p_y² inside its ranking; compute its logits and call "
                         "fusedkd.uskd_loss")
    if not isinstance(loss, str) or loss not in FUSED_LINEAR_LOSSES:
        raise ValueError(f"loss must be one of {', '.join(repr(k) for k in FUSED_LINEAR_LOSSES)}, got {loss!r}")
    return FUSED_LINEAR_LOSSES[loss]


def default_chunk_size(vocab: int, hidden: int, dtype: torch.dtype, teacher_dtype: torch.dtype | None = None,
                       device: torch.device | str = "cpu", rows: int | None = None) -> int:
    """Rows per chunk such that the chunk's temporaries fit in :data:`CHUNK_BYTES`:

        rows = CHUNK_BYTES // (V (2 b_s + b_t + b_up) + 2 H b_s)

    with ``b_s``/``b_t`` the bytes of a student/teacher logit (the student's logits and their gradient,
    the teacher's logits), ``b_up = 4`` on the CPU for half-precision students (the gradient converted for
    the float32 weight-gradient GEMM, which the CPU has no mixed-precision kernel for) and the ``2 H b_s``
    of the chunk's input-gradient rows. At least 1; rounded down to a multiple of
    :data:`CHUNK_ROW_MULTIPLE` when larger; at most ``rows`` (the tokens) when given.
    """
    b_s = torch.empty((), dtype=dtype).element_size()
    b_t = torch.empty((), dtype=teacher_dtype or dtype).element_size()
    upcast = 4 if torch.device(device).type == "cpu" and b_s < 4 else 0
    per_row = vocab * (2 * b_s + b_t + upcast) + 2 * hidden * b_s
    n = max(1, CHUNK_BYTES // max(per_row, 1))
    if n >= CHUNK_ROW_MULTIPLE:
        n -= n % CHUNK_ROW_MULTIPLE
    if rows is not None:
        n = max(1, min(n, rows))
    return int(n)


@dataclasses.dataclass(frozen=True)
class _Config:
    name: str
    spec: _SoftLoss
    kwargs: dict
    weight_hard: float
    weight_soft: float
    ignore_index: int
    chunk: int
    reduction: str
    accumulation_dtype: torch.dtype


def _accumulate_mm(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """acc += a @ b with acc's precision: a plain addmm when the dtypes agree; on CUDA cuBLAS's
    half-in / float32-out GEMM (``addmm`` with ``out_dtype``); on the CPU, which has no such kernel,
    ``a`` and ``b`` converted."""
    if a.dtype == acc.dtype:
        acc.addmm_(a, b)
    elif a.is_cuda:
        torch.ops.aten.addmm.dtype_out(acc, a, b, acc.dtype, out=acc)
    else:
        acc.addmm_(a.to(acc.dtype), b.to(acc.dtype))


def _linear_into(out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias) -> torch.Tensor:
    """out = x weightᵀ + bias (out: a contiguous block of rows); returned as a tensor of its own (a leaf)."""
    if bias is None:
        torch.mm(x, weight.t(), out=out)
    else:
        torch.addmm(bias, x, weight.t(), out=out)
    return out.detach()


def _soft_sum(cfg: _Config, s: torch.Tensor, t, y, valid, topk, mean_p) -> torch.Tensor:
    """Σ over the chunk's counted rows of the soft loss ℓ_i (autograd-tracked on s)."""
    spec, kw, ii = cfg.spec, cfg.kwargs, cfg.ignore_index
    if cfg.name == "tfnkd":
        rows, _ = F._tfnkd_rows(s, y, ii, mean_p)
        return rows.sum()
    if spec.teacher == "topk":
        return spec.fn(s, topk[0], topk[1], y, reduction="sum", ignore_index=ii, **kw)
    if spec.labels:
        return spec.fn(s, t, y, reduction="sum", ignore_index=ii, **kw)
    rows = spec.fn(s, t, reduction="none", **kw)
    return rows.sum() if valid is None else torch.where(valid, rows, torch.zeros_like(rows)).sum()


def _batch_mean_p(cfg, h_s, W_s, b_s, y) -> torch.Tensor:
    """tf-NKD's mean of p_y = exp(−CE) over the counted rows: a pass over the chunks without gradient."""
    total = torch.zeros((), dtype=torch.float64 if h_s.dtype == torch.float64 else torch.float32, device=h_s.device)
    for start in range(0, h_s.shape[0], cfg.chunk):
        c = slice(start, start + cfg.chunk)
        ce = F.cross_entropy_loss(torch_F.linear(h_s[c], W_s, b_s), y[c], reduction="none",
                                  ignore_index=cfg.ignore_index)
        total += torch.where(y[c] != cfg.ignore_index, torch.exp(-ce), torch.zeros_like(ce)).sum()
    return total / (y != cfg.ignore_index).sum().clamp_min(1)


def _chunked_forward(cfg: _Config, h_s, W_s, b_s, h_t, W_t, b_t, y, lp, idx, num_items, needs):
    """The loss and the gradients of (h_s, W_s, b_s) for grad_output = 1, chunk by chunk."""
    need_input, need_weight, need_bias = needs
    need_grad = need_input or need_weight or need_bias  # else the ops run without their gradient
    N = h_s.shape[0]
    V = W_s.shape[0]
    device = h_s.device
    loss_dtype = torch.float64 if h_s.dtype == torch.float64 else torch.float32
    acc = cfg.accumulation_dtype
    loss = torch.zeros((), dtype=loss_dtype, device=device)
    active = cfg.weight_hard != 0 or cfg.weight_soft != 0
    grad_input = None
    if need_input:  # every row written by its chunk's GEMM, or zero when no term is weighted
        grad_input = (torch.empty if active else torch.zeros)(h_s.shape, dtype=h_s.dtype, device=device)
    grad_weight = torch.zeros(W_s.shape, dtype=acc, device=device) if need_weight else None
    grad_bias = torch.zeros((V,), dtype=acc, device=device) if need_bias else None
    mean_p = None
    if cfg.name == "tfnkd" and cfg.weight_soft != 0:
        mean_p = _batch_mean_p(cfg, h_s, W_s, b_s, y)
    # The student's logits go into one buffer made once (an out= GEMM; on the CPU a fresh [rows, V]
    # tensor per chunk is fresh pages from the OS). The teacher's are freed after the soft term, so that
    # the chunk holds three [rows, V] buffers at most.
    rows = min(cfg.chunk, N)
    s_buf = torch.empty((rows, V), dtype=h_s.dtype, device=device) if active and rows else None
    for start in range(0, N if active else 0, cfg.chunk):
        c = slice(start, min(N, start + cfg.chunk))
        n = c.stop - start
        y_c = None if y is None else y[c]
        s = _linear_into(s_buf[:n], h_s[c], W_s, b_s).requires_grad_(need_grad)
        t = torch_F.linear(h_t[c], W_t, b_t) if cfg.spec.teacher == "logits" else None
        valid = None if y_c is None else y_c != cfg.ignore_index
        # One term at a time, each graph freed before the next: the chunk holds at most three [rows, V]
        # buffers (s and t with the soft term's gradient, then s and G with the hard term's).
        g = None
        if cfg.weight_soft != 0:
            with torch.enable_grad() if need_grad else contextlib.nullcontext():
                term = cfg.weight_soft * _soft_sum(cfg, s, t, y_c, valid,
                                                   (lp[c], idx[c]) if lp is not None else None, mean_p)
                if need_grad:
                    (g,) = torch.autograd.grad(term, s)  # the op's gradient, scaled in place by w_soft
            loss += term.detach()
        del t
        if cfg.weight_hard != 0:
            with torch.enable_grad() if need_grad else contextlib.nullcontext():
                term = cfg.weight_hard * F.cross_entropy_loss(s, y_c, reduction="sum", ignore_index=cfg.ignore_index)
                if need_grad:
                    (g_hard,) = torch.autograd.grad(term, s)
                    g = g_hard if g is None else g.add_(g_hard)
                    del g_hard
            loss += term.detach()
        del s, term
        if not need_grad:
            continue
        if need_input:
            torch.mm(g, W_s, out=grad_input[c])  # grad_h[c] = G_c W_s
        if need_weight:
            _accumulate_mm(grad_weight, g.t(), h_s[c])  # grad_W += G_cᵀ h_c
        if need_bias:
            grad_bias += g.sum(0, dtype=acc)  # grad_b += Σ_rows G_c
        del g
    # 1/D: a Python number when it is known on the host, else a device tensor (no synchronization).
    if cfg.reduction == "sum":
        inv = None
    elif isinstance(num_items, torch.Tensor):
        inv = 1.0 / num_items.to(device=device, dtype=loss_dtype)
    elif num_items is not None:
        inv = 1.0 / num_items
    elif y is not None:
        inv = 1.0 / (y != cfg.ignore_index).sum().clamp_min(1).to(loss_dtype)
    else:
        inv = 1.0 / max(N, 1)
    if inv is not None:
        loss = loss * inv
        if grad_input is not None:
            grad_input.mul_(inv)
        if grad_weight is not None:
            grad_weight.mul_(inv)
        if grad_bias is not None:
            grad_bias.mul_(inv)
    if grad_weight is not None and grad_weight.dtype != W_s.dtype:
        grad_weight = grad_weight.to(W_s.dtype)
    if grad_bias is not None and grad_bias.dtype != b_s.dtype:
        grad_bias = grad_bias.to(b_s.dtype)
    return loss, grad_input, grad_weight, grad_bias


class _FusedLinearDistillation(torch.autograd.Function):
    """Forward: the chunked loop (everything, gradients included). Backward: the saved gradients × grad_output."""

    @staticmethod
    def forward(ctx, h_s, W_s, b_s, h_t, W_t, b_t, y, lp, idx, num_items, cfg, grad_enabled):
        # grad_enabled: the caller's grad mode (inside forward it is always off); under no_grad or
        # inference_mode the chunks compute the loss alone.
        needs = tuple(grad_enabled and n for n in ctx.needs_input_grad[:3])
        needs = (needs[0], needs[1], b_s is not None and needs[2])
        loss, gi, gw, gb = _chunked_forward(cfg, h_s, W_s, b_s, h_t, W_t, b_t, y, lp, idx, num_items, needs)
        ctx.save_for_backward(*(x if x is not None else None for x in (gi, gw, gb)))
        ctx.has = (gi is not None, gw is not None, gb is not None)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        saved = list(ctx.saved_tensors)
        grads = [g if has else None for g, has in zip(saved, ctx.has)]
        if not _is_eager_cpu_one(grad_output):
            grads = [None if g is None else g * grad_output.to(g.dtype) for g in grads]
        return (grads[0], grads[1], grads[2]) + (None,) * 9


def _floating(x, name: str) -> torch.Tensor:
    x = F._tensor(x, name)
    if x.dtype not in F._LOGIT_DTYPES:
        raise TypeError(f"{name} must be float32, float16, bfloat16 or float64, got {str(x.dtype).split('.')[-1]}")
    return x


def _check_head(x: torch.Tensor, weight, bias, name: str, vocab: int | None):
    """x [..., H], weight [V, H] of x's dtype and device, bias [V] or None."""
    p = name.split("_")[0]  # "student" / "teacher"
    w = _floating(weight, f"{p}_weight")
    if x.dim() < 1:
        raise ValueError(f"{name} must have shape [..., H], got a 0-dim tensor")
    if w.dim() != 2 or w.shape[1] != x.shape[-1]:
        raise ValueError(f"{p}_weight must have shape [V, H] with H = {x.shape[-1]} ({name}'s last dimension), "
                         f"got {list(w.shape)}")
    if vocab is not None and w.shape[0] != vocab:
        hint = f"; pass {p}_weight[:{vocab}] for a padded vocabulary" if w.shape[0] > vocab else ""
        raise ValueError(f"{p}_weight has {w.shape[0]} rows (V) but student_weight has {vocab}{hint}")
    for other, other_name in ((w, f"{p}_weight"),) + (((bias, f"{p}_bias"),) if bias is not None else ()):
        if other.device != x.device:
            raise ValueError(f"{other_name} is on a different device than {name} ({other.device} vs {x.device})")
    if w.dtype != x.dtype:
        raise TypeError(f"{p}_weight is {str(w.dtype).split('.')[-1]} but {name} is {str(x.dtype).split('.')[-1]}: "
                        "the head's GEMM takes one dtype")
    if bias is not None:
        b = _floating(bias, f"{p}_bias")
        if b.shape != (w.shape[0],):
            raise ValueError(f"{p}_bias must have shape [V] = [{w.shape[0]}], got {list(b.shape)}")
        if b.dtype != x.dtype:
            raise TypeError(f"{p}_bias is {str(b.dtype).split('.')[-1]} but {name} is {str(x.dtype).split('.')[-1]}")
    return w


def fused_linear_distillation_loss(
    student_input: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_input: torch.Tensor | None,
    teacher_weight: torch.Tensor | None,
    true_labels: torch.Tensor | None,
    student_bias: torch.Tensor | None = None,
    teacher_bias: torch.Tensor | None = None,
    *,
    loss: str = "jsd",
    weight_hard_loss: float = 0.5,
    weight_soft_loss: float = 0.5,
    ignore_index: int = -100,
    chunk_size: int | None = None,
    reduction: str = "batchmean",
    num_items_in_batch: int | torch.Tensor | None = None,
    accumulation_dtype: torch.dtype | None = None,
    teacher_topk_logprobs: torch.Tensor | None = None,
    teacher_topk_indices: torch.Tensor | None = None,
    **loss_kwargs,
) -> torch.Tensor:
    """Student and teacher heads fused with a fusedkd loss; see the module docstring for the formula.

    Args:
        student_input: ``[..., H]`` student hidden states (``[B, T, H]`` or ``[N, H]``); bf16/fp16/fp32/fp64.
        student_weight: ``[V, H]`` student head, the input's dtype (receives a gradient when it requires one).
        teacher_input: ``[..., H_t]`` teacher hidden states, the student's leading shape (a constant);
            None for ``loss="topk_kd"`` and ``"tfnkd"``.
        teacher_weight: ``[V, H_t]`` teacher head, ``teacher_input``'s dtype; None with ``teacher_input``.
        true_labels: ``[...]`` int64/int32 labels of the tokens, ``ignore_index`` where a token does not
            count; None only with ``weight_hard_loss=0`` (every token then counts).
        student_bias, teacher_bias: optional ``[V]`` biases.
        loss: the soft term, one of :data:`FUSED_LINEAR_LOSSES` (kd, dkd, nkd, rld, forward_kl, reverse_kl,
            jsd, tvd, topk_kd, tfnkd); its hyper-parameters are ``loss_kwargs`` (e.g. ``beta``,
            ``temperature``), with that loss's defaults.
        weight_hard_loss: weight of the student's cross-entropy on ``true_labels`` (default 0.5).
        weight_soft_loss: weight of the soft term (default 0.5).
        ignore_index: label of the tokens that count for nothing (default -100).
        chunk_size: rows per chunk; default :func:`default_chunk_size` (a bounded slice of memory).
        reduction: ``"batchmean"`` (default: divided by D) or ``"sum"``.
        num_items_in_batch: optional divisor D instead of the count of non-ignored tokens (int or 0-dim tensor).
        accumulation_dtype: dtype of the weight and bias gradients' accumulators (default float32; float64
            for float64 weights).
        teacher_topk_logprobs, teacher_topk_indices: ``[..., k]`` the teacher for ``loss="topk_kd"``.
    Returns:
        The loss, a float32 scalar (float64 for float64 inputs).
    """
    spec = _loss_spec(loss)
    kwargs = _loss_kwargs(loss, spec, loss_kwargs)
    h = _floating(student_input, "student_input")
    W = _check_head(h, student_weight, student_bias, "student_input", None)
    if h.dim() < 2:
        raise ValueError(f"student_input must have shape [..., H] with at least 2 dimensions, got {list(h.shape)}")
    lead, H, V = h.shape[:-1], h.shape[-1], W.shape[0]
    g = W_t = None
    if spec.teacher == "logits":
        if teacher_input is None or teacher_weight is None:
            raise ValueError(f"loss={loss!r} needs teacher_input and teacher_weight")
        g = _floating(teacher_input, "teacher_input")
        if g.shape[:-1] != lead:
            raise ValueError(f"teacher_input has shape {list(g.shape)} but student_input has shape {list(h.shape)}: "
                             "they must share the leading dimensions")
        W_t = _check_head(g, teacher_weight, teacher_bias, "teacher_input", V)
        if (g.dtype == torch.float64) != (h.dtype == torch.float64):
            raise TypeError("teacher_input and student_input must both be float64 or neither")
        g = g.detach().reshape(-1, g.shape[-1])
        W_t = W_t.detach()
        teacher_bias = None if teacher_bias is None else teacher_bias.detach()
    elif teacher_input is not None or teacher_weight is not None:
        what = "the teacher's top-k log-probs (teacher_topk_logprobs, teacher_topk_indices)" if spec.teacher == "topk" \
            else "no teacher"
        raise ValueError(f"loss={loss!r} takes {what}: pass teacher_input=None and teacher_weight=None")
    lp = idx = None
    if spec.teacher == "topk":
        if teacher_topk_logprobs is None or teacher_topk_indices is None:
            raise ValueError("loss='topk_kd' needs teacher_topk_logprobs and teacher_topk_indices")
        lp = F._tensor(teacher_topk_logprobs, "teacher_topk_logprobs")
        idx = F._tensor(teacher_topk_indices, "teacher_topk_indices")
        if lp.shape[:-1] != lead or idx.shape != lp.shape:
            raise ValueError(f"teacher_topk_logprobs and teacher_topk_indices must have shape [..., k] with the leading "
                             f"shape {list(lead)} of student_input, got {list(lp.shape)} and {list(idx.shape)}")
        lp, idx = lp.detach().reshape(-1, lp.shape[-1]), idx.reshape(-1, idx.shape[-1])
    elif teacher_topk_logprobs is not None or teacher_topk_indices is not None:
        raise ValueError(f"teacher_topk_logprobs / teacher_topk_indices are the teacher of loss='topk_kd', not {loss!r}")
    w_hard = _checks.finite(_checks.real(weight_hard_loss, "weight_hard_loss"), "weight_hard_loss")
    w_soft = _checks.finite(_checks.real(weight_soft_loss, "weight_soft_loss"), "weight_soft_loss")
    ii = _checks.integer(ignore_index, "ignore_index")
    if reduction not in ("batchmean", "sum"):
        raise ValueError(f"reduction must be 'batchmean' or 'sum' for the fused linear head, got {reduction!r}")
    num_items = F._num_items(num_items_in_batch, reduction)
    y = None
    if true_labels is not None:
        y = F._on_student_device(h, F._tensor(true_labels, "true_labels"), "true_labels")
        if y.shape != lead:
            raise ValueError(f"true_labels must have student_input's leading shape {list(lead)}, got {list(y.shape)}")
        if y.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"true_labels must be int64 or int32, got {str(y.dtype).split('.')[-1]}")
        y = y.reshape(-1)
    elif w_hard != 0 or loss in _NEEDS_LABELS:
        raise ValueError(f"true_labels is required (weight_hard_loss={w_hard}, loss={loss!r}); None only for a "
                         "soft term without labels and weight_hard_loss=0")
    N = y.numel() if y is not None else h.reshape(-1, H).shape[0]
    if chunk_size is None:
        chunk = default_chunk_size(V, H, h.dtype, g.dtype if g is not None else None, h.device, rows=N)
    else:
        chunk = _checks.integer(chunk_size, "chunk_size")
        if chunk <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk}")
    if accumulation_dtype is None:
        accumulation_dtype = torch.float64 if W.dtype == torch.float64 else torch.float32
    elif accumulation_dtype not in F._LOGIT_DTYPES:
        raise TypeError(f"accumulation_dtype must be a floating dtype, got {accumulation_dtype}")
    cfg = _Config(loss, spec, kwargs, w_hard, w_soft, ii, chunk, reduction, accumulation_dtype)
    return _FusedLinearDistillation.apply(h.reshape(-1, H), W, student_bias, g, W_t, teacher_bias, y, lp, idx,
                                          num_items, cfg, torch.is_grad_enabled())
