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

try:
    from ._checks import reduction as _check_reduction
except ImportError:  # loaded from its file without the package (tests/python/test_reference_seeds.py)
    import importlib.util as _ilu
    import os as _os

    _spec = _ilu.spec_from_file_location("_fusedkd_checks", _os.path.join(_os.path.dirname(__file__), "_checks.py"))
    _checks_module = _ilu.module_from_spec(_spec)
    _spec.loader.exec_module(_checks_module)
    _check_reduction = _checks_module.reduction

__all__ = ["kd_loss", "dkd_loss", "nkd_loss", "uskd_loss", "rld_loss", "forward_kl_loss", "reverse_kl_loss", "jsd_loss",
           "tvd_loss", "topk_kd_loss", "cross_entropy_loss", "tfnkd_loss", "reduce_rows", "vocab_parallel_kd_loss"]


def reduce_rows(row_loss: torch.Tensor, reduction: str, counted: torch.Tensor | int | None = None) -> torch.Tensor:
    """Reduce per-row losses ``[N]`` as the spec defines (``counted`` rows for batchmean)."""
    reduction = _check_reduction(reduction)  # the functional API's rule (fusedkd._checks)
    if reduction == "none":
        return row_loss
    total = row_loss.sum()
    if reduction == "sum":
        return total
    n = row_loss.shape[0] if counted is None else counted
    if isinstance(n, torch.Tensor):
        return torch.where(n > 0, total / n.clamp_min(1), torch.zeros_like(total))
    return total / n if n > 0 else total * 0


def _acc(x: torch.Tensor) -> torch.Tensor:
    # fp32 accumulation for half inputs, fp64 stays fp64.
    return x.double() if x.dtype == torch.float64 else x.float()


def _valid_rows(target: torch.Tensor, ignore_index: int):
    valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target)).long()
    return valid, safe


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 4.0,
    logit_standardization: bool = False,
    reduction: str = "batchmean",
) -> torch.Tensor:
    """mdistiller ``kd_loss``: KL(p_t ‖ p_s) at temperature τ, summed over classes, times τ²
    (zju-SWJ/RLD's ``KD.py``: on standardized logits with ``logit_standardization``)."""
    s, t = _acc(student_logits), _acc(teacher_logits).detach()
    if logit_standardization:
        s, t = _standardize(s), _standardize(t)
    log_pred_student = F.log_softmax(s / temperature, dim=1)
    pred_teacher = F.softmax(t / temperature, dim=1)
    row = F.kl_div(log_pred_student, pred_teacher, reduction="none").sum(1) * temperature**2
    return reduce_rows(row, reduction)


def _non_target_mask(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(logits, dtype=torch.bool).scatter_(1, target.unsqueeze(1), False)


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
    """mdistiller ``dkd_loss``: α·TCKD + β·NCKD (zju-SWJ/RLD's ``DKD.py``: on standardized logits with
    ``logit_standardization``)."""
    s, t = _acc(student_logits), _acc(teacher_logits).detach()
    if logit_standardization:
        s, t = _standardize(s), _standardize(t)
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


def _hard_labels(target: torch.Tensor, ignore_index: int):
    """Integer labels [N] or a soft-label matrix [N, C] (its argmax, every row counted)."""
    if target.dim() > 1:
        # cls_KD: torch.max(gt_label, dim=1)[1]; argmax takes the first index on ties.
        y = target.argmax(dim=1)
        return torch.ones_like(y, dtype=torch.bool), y
    return _valid_rows(target, ignore_index)


def nkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    temperature: float = 1.0,
    gamma: float = 1.5,
    reduction: str = "batchmean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """cls_KD ``NKDLoss``: −p_t,y log p_s,y − γ τ² Σ_{j≠y} q_t,j log q_s,j (later, fixed mask revision)."""
    s, t = _acc(student_logits), _acc(teacher_logits).detach()
    valid, label = _hard_labels(target, ignore_index)
    label = label.view(-1, 1)
    N, c = s.shape
    s_i = F.log_softmax(s, dim=1)
    t_i = F.softmax(t, dim=1)
    s_t = torch.gather(s_i, 1, label)
    t_t = torch.gather(t_i, 1, label).detach()
    loss_t = -(t_t * s_t).squeeze(1)
    # Drop the target column (the reference's scatter_(1, label, 0) mask).
    mask = torch.ones_like(s).scatter_(1, label, 0).bool()
    logit_s = s[mask].reshape(N, -1)
    logit_t = t[mask].reshape(N, -1)
    S_i = F.log_softmax(logit_s / temperature, dim=1)
    T_i = F.softmax(logit_t / temperature, dim=1)
    loss_non = -gamma * (temperature**2) * (T_i * S_i).sum(dim=1)
    row = loss_t + loss_non
    row = torch.where(valid, row, torch.zeros_like(row))
    return reduce_rows(row, reduction, valid.sum())


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
    """cls_KD ``USKDLoss`` given the weak logits ``w = fc(fea_mid)``: α·T + β·NT + W.

    Soft labels ``[N, C]`` (mixup/cutmix) keep the two largest labels with their values, as the
    reference does. Differences from the reference (all deliberate, see docs/math_seed_losses.md):
    the batch mean of ``u`` runs over counted rows only (ignore_index); the descending sorts are
    stable (ties to the lower class index) where the reference's are unstable.
    """
    s, w = _acc(student_logits), _acc(weak_logits)
    N, c = s.shape
    if target.dim() > 1:
        value, label = torch.sort(target, descending=True, dim=-1, stable=True)
        value = value[:, :2].to(s.dtype)
        label = label[:, :2]
        valid = torch.ones(N, dtype=torch.bool, device=s.device)
    else:
        valid, y = _valid_rows(target, ignore_index)
        label = y.view(N, 1)
        value = torch.ones_like(label, dtype=s.dtype)
    counted = valid.sum()
    vmask = valid.view(N, 1).to(s.dtype)

    # final logit
    s_i = F.softmax(s, dim=1)
    s_t = torch.gather(s_i, 1, label)
    # soft target label: u = p_y², soft = u + value − mean(u) over counted rows
    p_t = s_t**2
    mean_u = (p_t * vmask).sum(0, keepdim=True) / counted.clamp_min(1)
    p_t = p_t + value - mean_u
    p_t = torch.where(value == 0, torch.zeros_like(p_t), p_t)
    p_t = p_t.detach()
    s_i = F.log_softmax(s, dim=1)
    s_t = torch.gather(s_i, 1, label)
    loss_t = -(p_t * s_t).sum(dim=1)

    # weak supervision
    if target.dim() > 1:
        smooth = target.to(s.dtype) * 0.9 + 0.1 * torch.ones_like(s) / c
    else:
        smooth = torch.zeros_like(s).scatter_(1, label, 0.9) + 0.1 * torch.ones_like(s) / c
    w_i = F.log_softmax(w, dim=1)
    loss_weak = -(mu * smooth * w_i).sum(dim=1)

    # rank: the student part uses log-probabilities (s_i, s_t are log_softmax here), as the reference
    w_p = F.softmax(w, dim=1)
    w_t = torch.gather(w_p, 1, label)
    rank = w_p / (1 - w_t.sum(1, True) + 1e-6) + s_i / (1 - s_t.sum(1, True) + 1e-6)

    # soft non-target labels: class at sorted position k gets 1/(k+1)
    _, rank = torch.sort(rank.detach(), descending=True, dim=-1, stable=True)
    zipf = 1 / torch.arange(1, c + 1, device=s.device, dtype=s.dtype)
    z_i = zipf.repeat(N, 1)
    ids_sort = torch.argsort(rank, dim=1)
    z_i = torch.gather(z_i, dim=1, index=ids_sort)

    mask = torch.ones_like(s).scatter_(1, label, 0).bool()
    k = label.shape[1]
    logit_s = s[mask].reshape(N, c - k)
    ns_i = F.log_softmax(logit_s, dim=1)
    nz_i = z_i[mask].reshape(N, c - k)
    nz_i = (nz_i / nz_i.sum(dim=1, keepdim=True)).detach()
    loss_non = -(nz_i * ns_i).sum(dim=1)

    row = alpha * loss_t + beta * loss_non + loss_weak
    row = torch.where(valid, row, torch.zeros_like(row))
    return reduce_rows(row, reduction, counted)


def _standardize(logit: torch.Tensor) -> torch.Tensor:
    # RLD.py normalize(): Bessel-corrected std (torch.std default), 1e-7 added to it.
    mean = logit.mean(dim=-1, keepdim=True)
    stdv = logit.std(dim=-1, keepdim=True)
    return (logit - mean) / (1e-7 + stdv)


def _cat_mask(t: torch.Tensor, mask1: torch.Tensor, mask2: torch.Tensor) -> torch.Tensor:
    return torch.cat([(t * mask1).sum(dim=1, keepdim=True), (t * mask2).sum(dim=1, keepdim=True)], dim=1)


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
    """zju-SWJ/RLD ``rld_loss``: α·SCD + β·MCD (optionally on standardized logits)."""
    s, t = _acc(student_logits), _acc(teacher_logits).detach()
    valid, y = _valid_rows(target, ignore_index)
    if logit_standardization:
        s = _standardize(s)
        t = _standardize(t)
    # SCD: student split around the label, teacher around its own arg-max (first index on ties)
    student_gt_mask = ~_non_target_mask(s, y)
    student_other_mask = ~student_gt_mask
    max_index = torch.argmax(t, dim=1)
    teacher_max_mask = ~_non_target_mask(t, max_index)
    teacher_other_mask = ~teacher_max_mask
    pred_student = F.softmax(s / alpha_temperature, dim=1)
    pred_teacher = F.softmax(t / alpha_temperature, dim=1)
    pred_student = _cat_mask(pred_student, student_gt_mask, student_other_mask)
    pred_teacher = _cat_mask(pred_teacher, teacher_max_mask, teacher_other_mask)
    scd = F.kl_div(torch.log(pred_student), pred_teacher, reduction="none").sum(1) * alpha_temperature**2
    # MCD: classes with t_j >= t_y masked with -1e9, as the reference (an empty K then gives two
    # uniform distributions, KL = 0, with no gradient through the masked entries)
    mask = t >= torch.gather(t, 1, y.unsqueeze(1))
    masked_student = (s / temperature).masked_fill(mask, -1e9)
    masked_teacher = (t / temperature).masked_fill(mask, -1e9)
    log_p2_s = F.log_softmax(masked_student, dim=1)
    p2_t = F.softmax(masked_teacher, dim=1)
    mcd = F.kl_div(log_p2_s, p2_t, reduction="none").sum(1) * temperature**2
    row = alpha * scd + beta * mcd
    row = torch.where(valid, row, torch.zeros_like(row))
    return reduce_rows(row, reduction, valid.sum())


def _token_rows(student_logits, teacher_logits, labels, softcap):
    """[..., V] logits as [N, V] rows in the accumulation type, capped (``c·tanh(x/c)``) when softcap is set;
    labels as [N]."""
    v = student_logits.shape[-1]
    s = _acc(student_logits).reshape(-1, v)
    t = _acc(teacher_logits).detach().reshape(-1, teacher_logits.shape[-1])
    if softcap is not None:
        s, t = softcap * torch.tanh(s / softcap), softcap * torch.tanh(t / softcap)
    return s, t, None if labels is None else labels.reshape(-1)


def _reduce_tokens(row, labels, reduction, ignore_index, num_items_in_batch=None):
    """Rows whose label is ignore_index count for nothing; "batchmean" divides by num_items_in_batch when
    given, else by the number of counted rows."""
    valid = None if labels is None else labels != ignore_index
    if valid is not None:
        row = torch.where(valid, row, torch.zeros_like(row))
    if num_items_in_batch is not None and reduction == "batchmean":
        return row.sum() / num_items_in_batch
    return reduce_rows(row, reduction, None if valid is None else valid.sum())


def _x_log_x_over_y(log_x, log_y):
    """Σ_j x_j (log x_j − log y_j) per row, the limit 0 where x_j = 0 (kl_div(log_y, log_x, log_target=True)
    gives 0·(−inf) = NaN there)."""
    x = log_x.exp()
    return torch.where(x > 0, x * (log_x - log_y), torch.zeros_like(x)).sum(-1)


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
    """TRL ``GKDTrainer.generalized_jsd_loss`` (trl/experimental/gkd/gkd_trainer.py), per token row with
    ``q = softmax(s/τ)`` (student), ``p = softmax(t/τ)`` (teacher): ``beta = 0`` forward KL ``KL(p ‖ q)``,
    ``beta = 1`` reverse KL ``KL(q ‖ p)``, otherwise ``β KL(p ‖ m) + (1 − β) KL(q ‖ m)`` with
    ``log m = logsumexp([log q + log(1 − β), log p + log β])``; no τ² (``temperature_squared`` multiplies by
    τ²). Rows whose label is ``ignore_index`` count for nothing; ``"batchmean"`` divides by the counted rows
    (TRL without labels divides by ``size(0)``: the batch size of a 3-D input, here the token count), or by
    ``num_items_in_batch``. ``"none"``: one loss per token row (TRL keeps the ``[..., V]`` elements)."""
    s, t, y = _token_rows(student_logits, teacher_logits, labels, softcap)
    log_q = F.log_softmax(s / temperature, dim=-1)
    log_p = F.log_softmax(t / temperature, dim=-1)
    if beta == 0:
        row = _x_log_x_over_y(log_p, log_q)
    elif beta == 1:
        row = _x_log_x_over_y(log_q, log_p)
    else:
        b = torch.tensor(beta, dtype=log_q.dtype)
        log_m = torch.logsumexp(torch.stack([log_q + torch.log1p(-b), log_p + torch.log(b)]), dim=0)
        row = beta * _x_log_x_over_y(log_p, log_m) + (1 - beta) * _x_log_x_over_y(log_q, log_m)
    if temperature_squared:
        row = row * temperature**2
    loss = _reduce_tokens(row, y, reduction, ignore_index, num_items_in_batch)
    return loss.reshape(student_logits.shape[:-1]) if reduction == "none" else loss


def forward_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None,
                    temperature: float = 1.0, reduction: str = "batchmean", ignore_index: int = -100,
                    num_items_in_batch: int | torch.Tensor | None = None, softcap: float | None = None,
                    temperature_squared: bool = False) -> torch.Tensor:
    """TRL ``generalized_jsd_loss`` at ``beta=0``: ``KL(p ‖ q)`` per token row (see :func:`jsd_loss`)."""
    return jsd_loss(student_logits, teacher_logits, labels, 0.0, temperature, reduction, ignore_index,
                    num_items_in_batch, softcap, temperature_squared)


def reverse_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None,
                    temperature: float = 1.0, reduction: str = "batchmean", ignore_index: int = -100,
                    num_items_in_batch: int | torch.Tensor | None = None, softcap: float | None = None,
                    temperature_squared: bool = False) -> torch.Tensor:
    """TRL ``generalized_jsd_loss`` at ``beta=1``: ``KL(q ‖ p)`` per token row (see :func:`jsd_loss`). A
    student −inf is probability 0 and adds nothing (TRL's kl_div gives NaN there)."""
    return jsd_loss(student_logits, teacher_logits, labels, 1.0, temperature, reduction, ignore_index,
                    num_items_in_batch, softcap, temperature_squared)


def tvd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None,
             temperature: float = 1.0, reduction: str = "batchmean", ignore_index: int = -100,
             num_items_in_batch: int | torch.Tensor | None = None, softcap: float | None = None) -> torch.Tensor:
    """Total variation distance ``½ Σ_j |p_j − q_j|`` per token row between ``q = softmax(s/τ)`` and
    ``p = softmax(t/τ)``, as Liger-Kernel's ``LigerTVDLoss`` computes it from the two probability
    distributions (it takes probabilities; this takes logits). Reductions as :func:`jsd_loss`."""
    s, t, y = _token_rows(student_logits, teacher_logits, labels, softcap)
    q = F.softmax(s / temperature, dim=-1)
    p = F.softmax(t / temperature, dim=-1)
    row = 0.5 * (p - q).abs().sum(-1)
    loss = _reduce_tokens(row, y, reduction, ignore_index, num_items_in_batch)
    return loss.reshape(student_logits.shape[:-1]) if reduction == "none" else loss


def topk_kd_loss(student_logits: torch.Tensor, teacher_topk_logprobs: torch.Tensor, teacher_topk_indices: torch.Tensor,
                 labels: torch.Tensor | None = None, temperature: float = 1.0, tail: str = "ghost",
                 reduction: str = "batchmean", ignore_index: int = -100,
                 num_items_in_batch: int | torch.Tensor | None = None, softcap: float | None = None) -> torch.Tensor:
    """KD from a sparse teacher (top-k log-probabilities at given indices), written as the anchors compute
    it: the student's full-vocabulary log-softmax at τ gathered at the indices, then

    * ``"ghost"``: Megatron-LM ``topk_kl_div(add_ghost_token=True)``
      (megatron/training/distillation/cached_logits_loss.py): one more bucket on both sides,
      ``log((1 − Σ exp(·)).clamp(min=1e-8))``, and ``Σ p (log p − log q)`` over the k + 1 buckets;
    * ``"renormalize"``: the teacher renormalized over K, ``log p − logsumexp_K(log p)``;
    * ``"renormalize_both"``: both renormalized over K (Model-Optimizer ``TopKLogitsKLLoss``, TRL server
      distillation with ``loss_add_tail=False``);
    * ``"none"``: Megatron-LM ``topk_kl_div(add_ghost_token=False)``.

    Reductions as :func:`jsd_loss`."""
    v, k = student_logits.shape[-1], teacher_topk_logprobs.shape[-1]
    s = _acc(student_logits).reshape(-1, v)
    if softcap is not None:
        s = softcap * torch.tanh(s / softcap)
    log_q = F.log_softmax(s / temperature, dim=-1).gather(-1, teacher_topk_indices.reshape(-1, k).long())
    log_p = teacher_topk_logprobs.detach().reshape(-1, k).to(s.dtype)
    if tail == "ghost":
        ghost_q = torch.log((1 - log_q.exp().sum(-1, keepdim=True)).clamp(min=1e-8))
        ghost_p = torch.log((1 - log_p.exp().sum(-1, keepdim=True)).clamp(min=1e-8))
        log_p, log_q = torch.cat([log_p, ghost_p], -1), torch.cat([log_q, ghost_q], -1)
    elif tail == "renormalize":
        log_p = log_p - torch.logsumexp(log_p, -1, keepdim=True)
    elif tail == "renormalize_both":
        log_p = log_p - torch.logsumexp(log_p, -1, keepdim=True)
        log_q = log_q - torch.logsumexp(log_q, -1, keepdim=True)
    elif tail != "none":
        raise ValueError(f"tail must be 'ghost', 'renormalize', 'renormalize_both' or 'none', got {tail!r}")
    row = _x_log_x_over_y(log_p, log_q)
    y = None if labels is None else labels.reshape(-1)
    loss = _reduce_tokens(row, y, reduction, ignore_index, num_items_in_batch)
    return loss.reshape(student_logits.shape[:-1]) if reduction == "none" else loss


def cross_entropy_loss(student_logits: torch.Tensor, target: torch.Tensor, reduction: str = "batchmean",
                       ignore_index: int = -100, num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
    """``F.cross_entropy`` per row (``reduction="none"``), rows equal to ``ignore_index`` 0, reduced as the
    other losses (``"batchmean"`` over the counted rows, or ``/ num_items_in_batch``)."""
    c = student_logits.shape[-1]
    s = _acc(student_logits).reshape(-1, c)
    y = target.reshape(-1)
    row = F.cross_entropy(s, y.long(), reduction="none", ignore_index=ignore_index)
    loss = _reduce_tokens(row, y, reduction, ignore_index, num_items_in_batch)
    return loss.reshape(student_logits.shape[:-1]) if reduction == "none" else loss


def tfnkd_loss(student_logits: torch.Tensor, target: torch.Tensor, reduction: str = "batchmean",
               ignore_index: int = -100) -> torch.Tensor:
    """tf-NKD as cls_KD's classification_distiller.py computed it (commits 8a16562 … de48db4;
    ../shared/spec/losses.md): ``log p = log_softmax(s)`` at the label, ``w = p + 1 − mean(p)`` detached,
    ``ℓ_i = −w_i log p_i``, ``"batchmean"`` = ``Σ_i ℓ_i / N``. Soft labels ``[N, C]``: ``value, label =
    sort(gt, descending)``; for the top two columns ``w = p + value − mean(p)`` (0 where value = 0),
    ``−mean_i w log p`` each, summed. ``ignore_index`` rows (hard labels) count for nothing, their p
    excluded from the mean."""
    c = student_logits.shape[-1]
    log_p_all = F.log_softmax(_acc(student_logits).reshape(-1, c), dim=-1)
    if target.is_floating_point() and target.dim() == student_logits.dim():
        value, label = target.reshape(-1, c).to(log_p_all.dtype).sort(dim=-1, descending=True)
        row = torch.zeros(log_p_all.shape[0], dtype=log_p_all.dtype, device=log_p_all.device)
        for k in (0, 1):
            log_p = log_p_all.gather(1, label[:, k:k + 1]).squeeze(1)
            p = log_p.detach().exp()
            v = value[:, k]
            w = torch.where(v != 0, p + v - p.mean(), torch.zeros_like(p))
            row = row - w * log_p
        loss = reduce_rows(row, reduction)
        return loss.reshape(student_logits.shape[:-1]) if reduction == "none" else loss
    y = target.reshape(-1)
    valid, safe = _valid_rows(y, ignore_index)
    log_p = log_p_all.gather(1, safe[:, None]).squeeze(1)
    p = torch.where(valid, log_p.detach().exp(), torch.zeros_like(log_p))
    counted = valid.sum()
    w = torch.where(valid, p + 1 - p.sum() / counted.clamp_min(1), torch.zeros_like(p))
    row = torch.where(valid, -w * log_p, torch.zeros_like(log_p))
    loss = reduce_rows(row, reduction, counted)
    return loss.reshape(student_logits.shape[:-1]) if reduction == "none" else loss


# ----------------------------------------------------------------------------- vocabulary shards


def _vocab_parallel_log_softmax(x: torch.Tensor, group, differentiable: bool) -> torch.Tensor:  # noqa: ANN001
    """log_softmax over a row split across the ranks of ``group``: an all-reduce MAX of the row max
    (a constant), an all-reduce SUM of Σ exp(x − max) (through ``torch.distributed.nn`` when the
    result must carry a gradient: its backward is another all-reduce)."""
    import torch.distributed as dist
    import torch.distributed.nn.functional as dist_nn

    m = x.detach().amax(dim=-1, keepdim=True)
    dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
    shifted = x - m
    z = shifted.exp().sum(dim=-1, keepdim=True)
    if differentiable:
        z = dist_nn.all_reduce(z, group=group)
    else:
        dist.all_reduce(z, group=group)
    return shifted - z.log()


def vocab_parallel_kd_loss(student_shard: torch.Tensor, teacher_shard: torch.Tensor, temperature: float = 1.0,
                           group: "torch.distributed.ProcessGroup | None" = None,
                           reduction: str = "batchmean") -> torch.Tensor:
    """Hinton KD ``τ² KL(softmax(t/τ) ‖ softmax(s/τ))`` on logits sharded over the vocabulary, written as the
    tensor-parallel KD losses of NVIDIA Model-Optimizer (``LogitsKLLoss``) and Megatron-LM compute it with
    plain torch.distributed: per distribution an all-reduce MAX of the row max and an all-reduce SUM of the
    sum of exponentials, the per-row KL of the local columns, and an all-reduce SUM of it. Five collectives
    in forward, two more in backward (the differentiable sums'), and full-shard fp32 temporaries. The
    baseline of ``benchmarks/bench_distributed.py``; ``fusedkd.distributed.kd_loss`` computes the same loss."""
    import torch.distributed.nn.functional as dist_nn

    s = _acc(student_shard) / temperature
    t = _acc(teacher_shard).detach() / temperature
    log_p_t = _vocab_parallel_log_softmax(t, group, differentiable=False)
    log_p_s = _vocab_parallel_log_softmax(s, group, differentiable=True)
    partial = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1)
    row = dist_nn.all_reduce(partial, group=group) * temperature**2
    return reduce_rows(row, _check_reduction(reduction))
