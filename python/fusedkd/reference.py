"""Pure-PyTorch reference implementations of every loss, following the authors' code.

They exist for tests, benchmarks and for users who want to compare against the fused ops. Each
function mirrors the reference repository's formula step by step (softmax, masks, gathers),
with the deliberate differences listed in ``docs/math.md``:

* the non-target softmax masks the target with ``-inf`` instead of subtracting 1000 from its
  scaled logit (identical whenever the logits are not thousands apart);
* reductions and ``ignore_index`` follow the spec: ``batchmean`` divides by the number of rows
  whose label is not ``ignore_index``; ``none`` returns one loss per row.

Gradients come from autograd through these graphs; the teacher is detached everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["kd_loss", "dkd_loss", "reduce_rows"]


def reduce_rows(row_loss: torch.Tensor, reduction: str, counted: torch.Tensor | int | None = None) -> torch.Tensor:
    """Reduce per-row losses ``[N]`` as the spec defines (``counted`` rows for batchmean)."""
    if reduction == "none":
        return row_loss
    total = row_loss.sum()
    if reduction == "sum":
        return total
    if reduction in ("batchmean", "mean"):
        n = row_loss.shape[0] if counted is None else counted
        if isinstance(n, torch.Tensor):
            return torch.where(n > 0, total / n.clamp_min(1), torch.zeros_like(total))
        return total / n if n > 0 else total * 0
    raise ValueError(f"reduction must be 'batchmean', 'sum' or 'none', got {reduction!r}")


def _acc(x: torch.Tensor) -> torch.Tensor:
    # fp32 accumulation for half inputs, fp64 stays fp64.
    return x.double() if x.dtype == torch.float64 else x.float()


def _valid_rows(target: torch.Tensor, ignore_index: int):
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target)).long()
    return valid, safe


def kd_loss(student_logits, teacher_logits, temperature: float = 4.0, reduction: str = "batchmean"):
    """mdistiller ``kd_loss``: KL(p_t ‖ p_s) at temperature τ, summed over classes, times τ²."""
    s, t = _acc(student_logits), _acc(teacher_logits).detach()
    log_pred_student = F.log_softmax(s / temperature, dim=1)
    pred_teacher = F.softmax(t / temperature, dim=1)
    row = F.kl_div(log_pred_student, pred_teacher, reduction="none").sum(1) * temperature**2
    return reduce_rows(row, reduction)


def _non_target_mask(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(logits, dtype=torch.bool).scatter_(1, target.unsqueeze(1), False)


def dkd_loss(
    student_logits,
    teacher_logits,
    target,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
    reduction: str = "batchmean",
    ignore_index: int = -100,
):
    """mdistiller ``dkd_loss``: α·TCKD + β·NCKD."""
    s, t = _acc(student_logits), _acc(teacher_logits).detach()
    valid, y = _valid_rows(target, ignore_index)
    gt_mask = ~_non_target_mask(s, y)
    other_mask = ~gt_mask
    pred_student = F.softmax(s / temperature, dim=1)
    pred_teacher = F.softmax(t / temperature, dim=1)
    # Binary [target, non-target] distributions; the second entry is the non-target sum.
    b_s = torch.stack([(pred_student * gt_mask).sum(1), (pred_student * other_mask).sum(1)], dim=1)
    b_t = torch.stack([(pred_teacher * gt_mask).sum(1), (pred_teacher * other_mask).sum(1)], dim=1)
    tckd = F.kl_div(torch.log(b_s), b_t, reduction="none").sum(1) * temperature**2
    # Non-target softmax: the target masked out (-inf where the reference subtracts 1000).
    neg = torch.finfo(s.dtype).min
    log_q_s = F.log_softmax((s / temperature).masked_fill(gt_mask, float("-inf")), dim=1)
    q_t = F.softmax((t / temperature).masked_fill(gt_mask, float("-inf")), dim=1)
    nckd = (F.kl_div(log_q_s.masked_fill(gt_mask, neg), q_t, reduction="none") * other_mask).sum(1) * temperature**2
    row = alpha * tckd + beta * nckd
    row = torch.where(valid, row, torch.zeros_like(row))
    return reduce_rows(row, reduction, valid.sum())
