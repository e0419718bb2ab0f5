"""Vocabulary-parallel (tensor-parallel) distillation losses over ``torch.distributed``.

Each rank of a process group holds a shard ``[..., V_r]`` of the student's (and teacher's) logits: the
columns ``[vocab_start_r, vocab_start_r + V_r)`` of the vocabulary, in rank order (uneven shards
allowed), as Megatron-style tensor-parallel heads and DTensor ``Shard(-1)`` logits lay them out. Labels
hold global class indices and are the same on every rank. Each function computes the loss of the whole
vocabulary, identical on every rank, and the gradient of the rank's own shard:

    loss = fusedkd.distributed.dkd_loss(student_shard, teacher_shard, target, group=tp_group)
    loss.backward()                      # local: no collective in backward

Per row, each shard runs the loss's statistics pass over its columns (the C++ row program's partial
state, ``include/fusedkd/shard.hpp``); one all-gather exchanges the packed states ``[world, N, P]``
bytes; every rank merges them in rank order (bit-identical results on every rank), finalizes the row and
writes its shard's gradient in the same step. JSD and TVD exchange their cross sums in a second
all-gather; RLD gathers the target logits first. ``docs/distributed.md`` lists the bytes and collectives
of every loss.

``vocab_start`` / ``vocab_size``: by default the shard sizes are all-gathered on each call (one small
collective that also checks that every rank holds the same rows, and makes every rank raise when one
rejects its inputs); pass both to skip it (then one collective per loss, no host synchronization).

DTensor logits with a ``Shard(-1)`` placement passed to the ordinary functions (``fusedkd.dkd_loss``)
run here, on their local shards and their mesh dimension's group.
"""

from __future__ import annotations

import functools
import inspect

import torch
import torch.distributed as dist

from . import _checks, functional
from ._checks import integer as _integer
from ._checks import reduction as _reduction
from ._ops import OP_ARGS, ops

__all__ = ["kd_loss", "dkd_loss", "nkd_loss", "rld_loss", "forward_kl_loss", "reverse_kl_loss", "jsd_loss",
           "tvd_loss", "topk_kd_loss", "cross_entropy_loss", "tfnkd_loss", "uskd_loss", "collectives"]

# The losses with a cross pass (a second exchange of their cross sums): _shard_cross exists for them.
_CROSS = {name for name in OP_ARGS if hasattr(ops, f"{name}_shard_cross")}
# The losses whose statistics pass reads the target logits (RLD's set K): gathered first.
_TARGET_FIRST = {"rld"}


def collectives(loss: str, *, explicit_layout: bool = False) -> int:
    """The number of collectives one forward of ``fusedkd.distributed.<loss>_loss`` makes (backward makes
    none): the exchange of the row states, the cross sums' (JSD, TVD), the target logits' (RLD), and the
    shard-size exchange unless ``vocab_start`` and ``vocab_size`` are given."""
    op = _op_of(loss)
    n = 1 + (op in _CROSS) + (op in _TARGET_FIRST)
    return n + (0 if explicit_layout else 1)


def _op_of(loss: str) -> str:
    name = loss[: -len("_loss")] if loss.endswith("_loss") else loss
    if name in ("tfnkd", "cross_entropy"):
        return "cross_entropy"
    if name == "topk_kd":
        return "topk_kd"
    if name not in OP_ARGS:
        raise ValueError(f"unknown loss {loss!r}")
    return name


# ----------------------------------------------------------------------------- the group and its layout


def _world(group) -> tuple[int, int]:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("fusedkd.distributed: torch.distributed is not initialized (call "
                           "torch.distributed.init_process_group first, or use the ordinary fusedkd functions)")
    return dist.get_world_size(group), dist.get_rank(group)


def _all_gather(x: torch.Tensor, group) -> torch.Tensor:
    """[world, *x.shape]: every rank's x in rank order."""
    world = dist.get_world_size(group)
    x = x.contiguous()
    if world == 1:
        return x.unsqueeze(0)
    # Gloo wants the output as the inputs concatenated along dim 0; viewed as [world, *x.shape].
    out = x.new_empty((world * x.shape[0],) + tuple(x.shape[1:]))
    dist.all_gather_into_tensor(out, x, group=group)
    return out.view((world,) + tuple(x.shape))


class ShardInputError(RuntimeError):
    """Another rank of the group rejected its inputs (its own error says why); raised on the ranks
    whose inputs were fine, so that no rank waits in a collective."""


def _layout(rows: int, cols: int, device, group, vocab_start, vocab_size, local_error):
    """(vocab_start, vocab_size) of this rank's shard. Without an explicit layout: one all-gather of
    (rows, cols, error) from every rank, which also makes every rank raise when a rank's inputs were
    rejected or the ranks hold different numbers of rows."""
    world, rank = _world(group)
    if vocab_start is not None or vocab_size is not None:
        if local_error is not None:
            raise local_error
        if vocab_start is None or vocab_size is None:
            raise ValueError("vocab_start and vocab_size go together: pass both (an explicit layout) or neither "
                             "(the shard sizes are then all-gathered)")
        return _integer(vocab_start, "vocab_start"), _integer(vocab_size, "vocab_size")
    meta = torch.tensor([rows, cols, 0 if local_error is None else 1], dtype=torch.int64)
    gathered = _all_gather(meta.to(device), group).cpu().tolist()  # on CUDA: one host synchronization
    bad = [r for r, (_, _, err) in enumerate(gathered) if err]
    if bad:
        if local_error is not None:
            raise local_error
        raise ShardInputError(f"fusedkd.distributed: rank(s) {bad} of the group rejected their inputs (see the "
                              "error raised there); no loss was computed")
    ns = [n for n, _, _ in gathered]
    if any(n != rows for n in ns):
        raise ValueError(f"student_logits: the ranks hold different numbers of rows {ns} (in rank order); every "
                         "rank must hold the same rows, each with its own columns")
    sizes = [c for _, c, _ in gathered]
    return sum(sizes[:rank]), sum(sizes)


# ----------------------------------------------------------------------------- the row-local losses


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _target_logits(s, t, y, start, ignore_index, group):
    """(s_y, t_y) [N, 2] of every row, gathered from the shard that holds y: each rank contributes its
    own (0 elsewhere), summed by one all-reduce (exact: one term is not 0)."""
    acc = _acc_dtype(s)
    cols = s.shape[1]
    owned = (y >= start) & (y < start + cols) & (y != ignore_index)
    k = (y - start).clamp(0, max(cols - 1, 0)).unsqueeze(1)
    vals = torch.cat([s.gather(1, k).to(acc), t.gather(1, k).to(acc)], dim=1)
    # Constants of the shard ops (their gradient is in _shard_finish's): no autograd graph.
    vals = torch.where(owned.unsqueeze(1), vals, torch.zeros_like(vals)).detach().contiguous()
    if dist.get_world_size(group) > 1:
        dist.all_reduce(vals, group=group)
    return vals


class _ShardedLoss(torch.autograd.Function):
    """The loss of one row-local loss on vocabulary shards; its gradient is computed in forward, and
    backward scales it by grad_output (no collective)."""

    @staticmethod
    def forward(ctx, s, t, y, target_logits, op_name, prefix_tail, reduction, compute_grad, group):
        prefix = [s] + ([t] if t is not None else []) + ([y] if OP_ARGS[op_name].labels else []) + prefix_tail
        prefix = prefix + [target_logits]
        # prefix_tail: the parameters, vocab_start, vocab_size[, ignore_index]; None labels stay None.
        partials = _all_gather(getattr(ops, f"{op_name}_shard_stats")(*prefix), group)
        cross = None
        if op_name in _CROSS:
            cross = _all_gather(getattr(ops, f"{op_name}_shard_cross")(*prefix, partials), group)
        loss, grad = getattr(ops, f"{op_name}_shard_finish")(*prefix, partials, cross, reduction, compute_grad)
        ctx.grad = grad if compute_grad else None
        ctx.reduction = reduction
        ctx.dtype = s.dtype
        ctx.mark_non_differentiable()
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        grad, ctx.grad = ctx.grad, None
        if grad is None:
            raise RuntimeError("fusedkd.distributed: backward through a loss whose gradient was not computed "
                               "(no input required grad in forward), or a second backward")
        g = grad * (grad_loss.unsqueeze(1) if ctx.reduction == "none" else grad_loss).to(grad.dtype)
        return (g.to(ctx.dtype),) + (None,) * 8


def _check_shard_pair(s: torch.Tensor, t: torch.Tensor, name: str) -> None:
    if t.shape != s.shape:
        raise ValueError(f"{name} has shape {list(t.shape)} but student_logits has shape {list(s.shape)}: the "
                         "two shards of a rank hold the same columns")


def _sharded_loss(op_name: str, student, second, labels, kw: dict, group, vocab_start, vocab_size):
    spec = OP_ARGS[op_name]
    local_error = None
    try:
        s = functional._tensor(student, "student_logits")
        x = None if spec.second is None else functional._on_student_device(
            s, functional._tensor(second, spec.second), spec.second)
        if s.dim() < 2:
            raise ValueError(f"student_logits must have at least 2 dimensions [..., V_local], got {s.dim()} dimension(s)")
        if x is not None:
            _check_shard_pair(s, x, spec.second)
        reduction = _reduction(kw["reduction"])
        num_items = functional._num_items(kw.get("num_items_in_batch"), reduction)
        lead = s.shape[:-1]
        s = functional._rows(s)
        functional._check_logits(s, "student_logits")
        if x is not None:
            x = functional._constant(functional._rows(x))
            functional._check_pair(s, x, spec.second)
        y = None
        if spec.labels is not None and not (labels is None and spec.labels_optional):
            y = functional._on_student_device(s, functional._tensor(labels, spec.labels), spec.labels)
            if y.shape != lead:
                raise ValueError(f"{spec.labels} must have the logits' leading shape {list(lead)}, got {list(y.shape)}")
            if y.dtype not in (torch.int64, torch.int32):
                raise TypeError(f"{spec.labels} must hold integer class labels (int64 or int32), got "
                                f"{str(y.dtype).split('.')[-1]}")
            y = y.reshape(-1).to(torch.int64)
        params = [functional._PARAM_CHECKS[kind](kw[name], name) if name != "softcap" else functional._softcap(kw[name])
                  for name, kind in spec.params]
        ignore_index = _integer(kw["ignore_index"], "ignore_index") if spec.labels is not None else None
    except (TypeError, ValueError, RuntimeError, NotImplementedError) as e:
        local_error = e
        s = student if isinstance(student, torch.Tensor) and student.dim() >= 1 else torch.empty(0, 0)
    rows = s.shape[0] if local_error is None else -1
    cols = s.shape[-1] if local_error is None else -1
    device = s.device if isinstance(s, torch.Tensor) else torch.device("cpu")
    start, size = _layout(rows, cols, device, group, vocab_start, vocab_size, local_error)
    tail = params + [start, size] + ([ignore_index] if spec.labels is not None else [])
    target_logits = None
    if op_name in _TARGET_FIRST:
        if y is None:  # the loss needs labels; its op names the argument
            raise ValueError(f"{spec.labels}: this loss needs labels")
        target_logits = _target_logits(s, x, y, start, ignore_index, group)
    compute_grad = functional._needs_grad(s)
    red = "sum" if num_items is not None else reduction
    loss = _ShardedLoss.apply(s, x, y, target_logits, op_name, tail, red, compute_grad, group)
    if num_items is not None:
        loss = loss / num_items
    if reduction == "none":
        loss = loss.reshape(lead)
    return loss


# ----------------------------------------------------------------------------- top-k teacher KD


class _ShardedTopK(torch.autograd.Function):
    """Top-k teacher KD (losses/topk_kd.hpp's math) on a student shard: the teacher's indices are
    global. One all-gather of (max, Σ exp, z at the owned indices) per row; the rest is local."""

    @staticmethod
    def forward(ctx, s, lp, idx, y, temperature, tail, softcap, start, reduction, ignore_index, compute_grad, group):
        acc = _acc_dtype(s)
        n, cols = s.shape
        k = idx.shape[1]
        x = s.to(acc)
        if softcap:
            th = torch.tanh(x / softcap)
            x = softcap * th
        z = x / temperature
        m = z.amax(dim=1, keepdim=True) if cols else z.new_full((n, 1), float("-inf"))
        m_safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        ze = torch.exp(z - m_safe).sum(dim=1, keepdim=True)
        local = (idx >= start) & (idx < start + cols)
        li = (idx - start).clamp(0, max(cols - 1, 0))
        z_k = torch.where(local, z.gather(1, li), torch.zeros_like(lp))
        packed = torch.cat([m_safe, ze, z_k], dim=1)
        g = _all_gather(packed, group)  # [world, N, 2 + k]
        ms, zs = g[:, :, 0], g[:, :, 1]
        m_all = ms.amax(dim=0)
        lse = m_all + torch.log((zs * torch.exp(ms - m_all)).sum(dim=0))
        log_q = g[:, :, 2:].sum(dim=0) - lse.unsqueeze(1)  # one shard holds each index
        log_p = lp
        p = torch.exp(log_p)
        log_QK = torch.logsumexp(log_q, dim=1)
        PK = p.sum(dim=1)
        QK = torch.exp(log_QK)
        xlx = lambda lw, lq: torch.where(lw == float("-inf"), torch.zeros_like(lw), torch.exp(lw) * (lw - lq))
        eps = 1e-8
        if tail == "ghost":
            one_m_q = -torch.expm1(log_QK)
            G = (1 - PK).clamp(min=eps)
            R = one_m_q.clamp(min=eps)
            row = xlx(log_p, log_q).sum(1) + G * (torch.log(G) - torch.log(R))
            r = torch.where(one_m_q > eps, G / one_m_q, torch.zeros_like(G))
            w = p
            c_out = PK - r * QK
            c_in = c_out + r
        elif tail == "renormalize":
            log_w = log_p - torch.logsumexp(log_p, dim=1, keepdim=True)
            w = torch.exp(log_w)
            row = xlx(log_w, log_q).sum(1)
            c_out = c_in = torch.ones_like(PK)
        elif tail == "renormalize_both":
            log_w = log_p - torch.logsumexp(log_p, dim=1, keepdim=True)
            w = torch.exp(log_w)
            row = xlx(log_w, log_q - log_QK.unsqueeze(1)).sum(1)
            c_out = torch.zeros_like(PK)
            c_in = 1 / QK
        else:
            w = p
            row = xlx(log_p, log_q).sum(1)
            c_out = c_in = PK
        counted_mask = torch.ones(n, dtype=torch.bool, device=s.device) if y is None else y != ignore_index
        row = torch.where(counted_mask, row, torch.zeros_like(row))
        counted = counted_mask.sum()
        loss = row if reduction == "none" else row.sum()
        if reduction == "batchmean":
            loss = loss / counted.clamp_min(1).to(loss.dtype)
        ctx.grad = None
        if compute_grad:
            q = torch.exp(z - lse.unsqueeze(1))
            dz = q * c_out.unsqueeze(1)
            add = torch.where(local, q.gather(1, li) * (c_in - c_out).unsqueeze(1) - w, torch.zeros_like(w))
            dz = dz.scatter_add(1, li, add)
            if softcap:
                dz = dz * (1 - th * th)
            dz = dz / temperature
            scale = counted_mask.to(acc).unsqueeze(1)
            if reduction == "batchmean":
                scale = scale / counted.clamp_min(1).to(acc)
            grad = dz * scale
            ctx.grad = grad.to(torch.float32 if s.dtype == torch.float16 else s.dtype)
        ctx.reduction, ctx.dtype = reduction, s.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        grad, ctx.grad = ctx.grad, None
        if grad is None:
            raise RuntimeError("fusedkd.distributed.topk_kd_loss: backward without a computed gradient")
        g = grad * (grad_loss.unsqueeze(1) if ctx.reduction == "none" else grad_loss).to(grad.dtype)
        return (g.to(ctx.dtype),) + (None,) * 11


def topk_kd_loss(student_logits: torch.Tensor, teacher_topk_logprobs: torch.Tensor, teacher_topk_indices: torch.Tensor,
                 labels: torch.Tensor | None = None, temperature: float = 1.0, tail: str = "ghost",
                 reduction: str = "batchmean", ignore_index: int = -100,
                 num_items_in_batch: int | torch.Tensor | None = None, softcap: float | None = None, *,
                 group: "dist.ProcessGroup | None" = None, vocab_start: int | None = None,
                 vocab_size: int | None = None) -> torch.Tensor:
    """:func:`fusedkd.topk_kd_loss` with the student's logits sharded over the vocabulary; the teacher's
    top-k log-probabilities and their global indices are the same on every rank. One all-gather of
    ``2 + k`` numbers per row (plus the shard-size exchange without an explicit layout); the loss is
    computed with torch operations on the shard (the math of ``losses/topk_kd.hpp``)."""
    local_error = None
    try:
        s = functional._tensor(student_logits, "student_logits")
        lp = functional._on_student_device(s, functional._tensor(teacher_topk_logprobs, "teacher_topk_logprobs"),
                                           "teacher_topk_logprobs")
        idx = functional._on_student_device(s, functional._tensor(teacher_topk_indices, "teacher_topk_indices"),
                                            "teacher_topk_indices")
        if s.dim() < 2 or lp.shape[:-1] != s.shape[:-1] or idx.shape != lp.shape:
            raise ValueError(f"student_logits {list(s.shape)}, teacher_topk_logprobs {list(lp.shape)} and "
                             f"teacher_topk_indices {list(idx.shape)} must be [..., V_local], [..., k], [..., k]")
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"teacher_topk_indices must be int64 or int32, got {str(idx.dtype).split('.')[-1]}")
        tail = functional._tail(tail)
        reduction = _reduction(reduction)
        num_items = functional._num_items(num_items_in_batch, reduction)
        temperature = _checks.real(temperature, "temperature")
        lo, hi = (1e-8, 1e6) if s.dtype == torch.float64 else (1e-4, 1e2)  # params.hpp's temperature_range
        if not lo <= temperature <= hi:
            raise ValueError(f"temperature must be in [{lo:g}, {hi:g}] for {str(s.dtype).split('.')[-1]} logits, "
                             f"got {temperature}")
        cap = functional._softcap(softcap)
        lead, k = s.shape[:-1], lp.shape[-1]
        s = functional._rows(s)
        functional._check_logits(s, "student_logits")
        lp = functional._constant(lp).reshape(-1, k).to(_acc_dtype(s))
        idx = idx.reshape(-1, k).to(torch.int64)
        y = None
        if labels is not None:
            y = functional._on_student_device(s, functional._tensor(labels, "labels"), "labels")
            if y.shape != lead:
                raise ValueError(f"labels must have the logits' leading shape {list(lead)}, got {list(y.shape)}")
            y = y.reshape(-1)
        ignore_index = _integer(ignore_index, "ignore_index")
    except (TypeError, ValueError, RuntimeError) as e:
        local_error = e
        s = student_logits if isinstance(student_logits, torch.Tensor) and student_logits.dim() >= 1 else torch.empty(0, 0)
    rows = s.shape[0] if local_error is None else -1
    cols = s.shape[-1] if local_error is None else -1
    start, size = _layout(rows, cols, s.device, group, vocab_start, vocab_size, local_error)
    counted_idx = idx if y is None else idx[y != ignore_index]
    if counted_idx.numel() and s.device.type == "cpu" and (int(counted_idx.min()) < 0 or int(counted_idx.max()) >= size):
        raise ValueError(f"teacher_topk_indices: an index is outside the global vocabulary [0, {size})")
    red = "sum" if num_items is not None else reduction
    loss = _ShardedTopK.apply(s, lp, idx, y, temperature, tail, cap, start, red, ignore_index,
                              functional._needs_grad(s), group)
    if num_items is not None:
        loss = loss / num_items
    return loss.reshape(lead) if reduction == "none" else loss


# ----------------------------------------------------------------------------- the public functions


def _sharded_function(public: str, op_for):
    """fusedkd.distributed.<public>: the signature of fusedkd.<public> plus the keyword-only group,
    vocab_start and vocab_size; op_for(arguments) names the row-local op."""
    fn = getattr(functional, public)
    sig = inspect.signature(fn)
    names = list(sig.parameters)
    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=a)
             for n, a in (("group", "dist.ProcessGroup | None"), ("vocab_start", "int | None"),
                          ("vocab_size", "int | None"))]

    @functools.wraps(fn)
    def sharded(*args, group=None, vocab_start=None, vocab_size=None, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        a = dict(bound.arguments)
        op = op_for(a)
        spec = OP_ARGS[op]
        second = a.get(names[1]) if spec.second is not None else None
        labels = a.get(spec.labels) if spec.labels is not None else None
        return _sharded_loss(op, a[names[0]], second, labels, a, group, vocab_start, vocab_size)

    sharded.__signature__ = sig.replace(parameters=list(sig.parameters.values()) + extra)
    sharded.__doc__ = (f"{public} on vocabulary shards: :func:`fusedkd.{public}`'s arguments, with each rank's "
                       "logits ``[..., V_local]`` (its columns of the vocabulary, in rank order) and global labels; "
                       "``group`` (default: the default group), ``vocab_start`` and ``vocab_size`` (default: "
                       "all-gathered) as the module says. The loss is the whole vocabulary's, the same on every "
                       "rank; the gradient is the shard's.")
    sharded.__module__ = __name__
    sharded.__qualname__ = public
    return sharded


kd_loss = _sharded_function("kd_loss", lambda a: "kd")
dkd_loss = _sharded_function("dkd_loss", lambda a: "dkd")
rld_loss = _sharded_function("rld_loss", lambda a: "rld")
forward_kl_loss = _sharded_function("forward_kl_loss", lambda a: "forward_kl")
reverse_kl_loss = _sharded_function("reverse_kl_loss", lambda a: "reverse_kl")
tvd_loss = _sharded_function("tvd_loss", lambda a: "tvd")
cross_entropy_loss = _sharded_function("cross_entropy_loss", lambda a: "cross_entropy")


def _jsd_op(a: dict) -> str:
    b = functional._beta(a["beta"])
    return "forward_kl" if b == 0.0 else "reverse_kl" if b == 1.0 else "jsd"


jsd_loss = _sharded_function("jsd_loss", _jsd_op)
_nkd = _sharded_function("nkd_loss", lambda a: "nkd")


@functools.wraps(functional.nkd_loss)
def nkd_loss(student_logits, teacher_logits, target, *args, group=None, vocab_start=None, vocab_size=None, **kwargs):
    if isinstance(target, torch.Tensor) and target.is_floating_point():
        raise ValueError("target: soft labels are not supported on vocabulary shards (their argmax needs the whole "
                         "row); pass integer labels")
    return _nkd(student_logits, teacher_logits, target, *args, group=group, vocab_start=vocab_start,
                vocab_size=vocab_size, **kwargs)


nkd_loss.__signature__ = _nkd.__signature__
nkd_loss.__doc__ = _nkd.__doc__


def tfnkd_loss(student_logits: torch.Tensor, target: torch.Tensor, reduction: str = "batchmean",
               ignore_index: int = -100, *, group: "dist.ProcessGroup | None" = None, vocab_start: int | None = None,
               vocab_size: int | None = None) -> torch.Tensor:
    """tf-NKD on vocabulary shards: the sharded cross-entropy rows (identical on every rank), weighted by
    ``w_i = p_i + 1 − mean p`` as :func:`fusedkd.tfnkd_loss`. Integer labels only."""
    if isinstance(target, torch.Tensor) and target.is_floating_point():
        raise ValueError("target: soft labels are not supported on vocabulary shards; pass integer labels")
    reduction = _reduction(reduction)
    ce = cross_entropy_loss(student_logits, target, reduction="none", ignore_index=ignore_index, group=group,
                            vocab_start=vocab_start, vocab_size=vocab_size)
    with torch.no_grad():
        valid = target.reshape(ce.shape) != ignore_index
        p = torch.where(valid, torch.exp(-ce), torch.zeros_like(ce))
        counted = valid.sum()
        mean_p = p.sum() / counted.clamp_min(1)
        w = torch.where(valid, p + 1 - mean_p, torch.zeros_like(p))
    rows = w * ce
    if reduction == "none":
        return rows
    total = rows.sum()
    return total if reduction == "sum" else total / counted.clamp_min(1).to(total.dtype)


def uskd_loss(*args: object, **kwargs: object) -> torch.Tensor:
    """USKD cannot run on vocabulary shards: its non-target term ranks every class of the row by a score
    built from both heads' full softmaxes (Zipf weights by rank), which no per-shard statistic gives."""
    raise NotImplementedError(
        "fusedkd.distributed.uskd_loss: USKD is not supported on vocabulary shards: its Zipf term ranks all "
        "classes of a row (a global sort of every column's score), which no mergeable per-shard statistic "
        "provides; gather the logits (classification heads are small) and call fusedkd.uskd_loss")


# ----------------------------------------------------------------------------- DTensor inputs


def _dtensor_types():
    try:
        from torch.distributed.tensor import DTensor, Replicate, Shard
    except ImportError:  # pragma: no cover - torch without DTensor
        return None
    return DTensor, Replicate, Shard


def is_dtensor(x) -> bool:
    t = _dtensor_types() if type(x) is not torch.Tensor and isinstance(x, torch.Tensor) else None
    return t is not None and isinstance(x, t[0])


def _shard_dim(x, name: str):
    """The mesh dimension over which x is sharded on its last dimension (every other one Replicate)."""
    DTensor, Replicate, Shard = _dtensor_types()
    dims = []
    for mesh_dim, p in enumerate(x.placements):
        if isinstance(p, Shard) and p.dim in (-1, x.dim() - 1):
            dims.append(mesh_dim)
        elif not isinstance(p, Replicate):
            raise ValueError(f"{name}: a DTensor must be sharded over its last (vocabulary) dimension, Shard(-1), "
                             f"and replicated elsewhere; got placements {x.placements}")
    if len(dims) != 1:
        raise ValueError(f"{name}: a DTensor must have exactly one Shard(-1) placement, got {x.placements}")
    return dims[0]


def _local(x, name: str, mesh, mesh_dim, placements):
    if x is None or not is_dtensor(x):
        return x
    if x.device_mesh != mesh or tuple(x.placements) != tuple(placements):
        raise ValueError(f"{name}: a DTensor on another mesh or with other placements than student_logits "
                         f"({x.placements} vs {placements})")
    return x.to_local()


def _replicated(x, name: str):
    if x is None or not is_dtensor(x):
        return x
    DTensor, Replicate, Shard = _dtensor_types()
    if not all(isinstance(p, Replicate) for p in x.placements):
        raise ValueError(f"{name}: labels as a DTensor must be replicated, got placements {x.placements}")
    return x.to_local()


def dtensor_loss(op_name: str, student, second, labels, kwargs: dict):
    """The ordinary functions' path for DTensor logits (functional._loss): the local shards on the group
    of the sharded mesh dimension. Returns a plain tensor: the loss, the same on every rank."""
    mesh_dim = _shard_dim(student, "student_logits")
    mesh, placements = student.device_mesh, student.placements
    group = mesh.get_group(mesh_dim)
    s = student.to_local()
    second_name = OP_ARGS[op_name].second or "teacher_logits"
    if second is not None and not is_dtensor(second):
        raise ValueError(f"{second_name} must be a DTensor with the placements of student_logits (a Shard(-1) "
                         "DTensor student is distilled from a teacher sharded the same way)")
    x = _local(second, second_name, mesh, mesh_dim, placements)
    y = _replicated(labels, OP_ARGS[op_name].labels or "labels")
    if op_name == "uskd":
        uskd_loss()
    return _sharded_loss(op_name, s, x, y, kwargs, group, None, None)


def dtensor_topk_kd_loss(student, logprobs, indices, labels, *args):
    """fusedkd.topk_kd_loss's path for a DTensor student sharded over the vocabulary: the teacher's
    top-k tensors (plain or replicated DTensors) are the same on every rank."""
    mesh_dim = _shard_dim(student, "student_logits")
    group = student.device_mesh.get_group(mesh_dim)
    lp = _replicated(logprobs, "teacher_topk_logprobs")
    idx = _replicated(indices, "teacher_topk_indices")
    y = _replicated(labels, "labels")
    return topk_kd_loss(student.to_local(), lp, idx, y, *args, group=group)
