"""``nn.Module`` wrappers of the functional losses, holding their hyper-parameters.

Each module validates its arguments when it is built (the same rules as the functions, see
``fusedkd._checks``) and again on every call, so an attribute changed later is checked too.
``extra_repr`` lists every argument. The formulas, defaults and references are those of the
functions in :mod:`fusedkd.functional`. One base class, :class:`_LossModule`, holds the
hyper-parameters and calls the function; each module keeps its explicit, documented signature.
"""

from __future__ import annotations

import torch
from torch import nn

from . import functional as F
from ._checks import integer as _integer
from ._checks import reduction as _reduction
from ._ops import OP_ARGS

__all__ = ["KDLoss", "DKDLoss", "NKDLoss", "USKDLoss", "RLDLoss", "ForwardKLLoss", "ReverseKLLoss", "JSDLoss",
           "TVDLoss", "TopKKDLoss", "CrossEntropyLoss", "TfNKDLoss", "FusedLinearDistillationLoss"]


class _LossModule(nn.Module):
    """A loss module: its hyper-parameters (``_fields``, in the constructor's order) are attributes,
    type-checked by the op's schema types when set in ``__init__``; each subclass's ``forward``
    (explicit, documented inputs) calls its function with ``**self._hyper()`` and, where given, the
    call's ``num_items_in_batch`` (a property of the batch, not of the loss)."""

    _op: str  # the fusedkd op (its schema types the hyper-parameters)
    _fields: tuple  # the hyper-parameters, in the constructor's argument order

    def __init__(self, **hyper) -> None:
        super().__init__()
        kinds = dict(OP_ARGS[self._op].params)
        for name in self._fields:
            value = hyper[name]
            if name == "reduction":
                value = _reduction(value)
            elif name == "ignore_index":
                value = _integer(value, name)
            elif name == "softcap":
                value = None if value is None else F._softcap(value)
            elif name == "beta" and self._op == "jsd":
                value = F._beta(value)
            elif name == "tail" and self._op == "topk_kd":
                value = F._tail(value)
            else:
                value = F._PARAM_CHECKS[kinds[name]](value, name)  # the functions' check of that type
            setattr(self, name, value)

    def _hyper(self) -> dict:
        return {name: getattr(self, name) for name in self._fields}

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)


class KDLoss(_LossModule):
    """Hinton KD (mdistiller ``KD.py``), see :func:`fusedkd.kd_loss`:
    ``ℓ_i = τ² · KL(softmax(t_i/τ) ‖ softmax(s_i/τ))``.

    Args:
        temperature: τ (default 4.0).
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``.
        logit_standardization: standardize both rows first (default False).

    ``forward(student_logits, teacher_logits)`` → the loss (fp32; fp64 for fp64 logits).
    """

    _op, _fields = "kd", ("temperature", "reduction", "logit_standardization")

    def __init__(self, temperature: float = 4.0, reduction: str = "batchmean",
                 logit_standardization: bool = False) -> None:
        super().__init__(temperature=temperature, reduction=reduction, logit_standardization=logit_standardization)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
        return F.kd_loss(student_logits, teacher_logits, **self._hyper(), num_items_in_batch=num_items_in_batch)


class DKDLoss(_LossModule):
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

    _op = "dkd"
    _fields = ("alpha", "beta", "temperature", "reduction", "ignore_index", "logit_standardization")

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        reduction: str = "batchmean",
        ignore_index: int = -100,
        logit_standardization: bool = False,
    ) -> None:
        super().__init__(alpha=alpha, beta=beta, temperature=temperature, reduction=reduction,
                         ignore_index=ignore_index, logit_standardization=logit_standardization)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
        return F.dkd_loss(student_logits, teacher_logits, target, **self._hyper(), num_items_in_batch=num_items_in_batch)


class NKDLoss(_LossModule):
    """Normalized KD (cls_KD ``nkd.py``), see :func:`fusedkd.nkd_loss`:
    ``ℓ_i = −p_t,y log p_s,y − γ τ² Σ_{j≠y} q_t,j log q_s,j``.

    Args:
        temperature: τ of the non-target term (default 1.0; the target term is at 1).
        gamma: γ (default 1.5).
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``.
        ignore_index: label of rows that do not count (default -100).

    ``forward(student_logits, teacher_logits, target)``; ``target`` may be soft labels ``[N, C]``.
    """

    _op, _fields = "nkd", ("temperature", "gamma", "reduction", "ignore_index")

    def __init__(self, temperature: float = 1.0, gamma: float = 1.5, reduction: str = "batchmean",
                 ignore_index: int = -100) -> None:
        super().__init__(temperature=temperature, gamma=gamma, reduction=reduction, ignore_index=ignore_index)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
        return F.nkd_loss(student_logits, teacher_logits, target, **self._hyper(), num_items_in_batch=num_items_in_batch)


class RLDLoss(_LossModule):
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

    _op = "rld"
    _fields = ("alpha", "beta", "temperature", "logit_standardization", "alpha_temperature", "reduction",
               "ignore_index")

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
                 logit_standardization: bool = False, alpha_temperature: float = 1.0,
                 reduction: str = "batchmean", ignore_index: int = -100) -> None:
        super().__init__(alpha=alpha, beta=beta, temperature=temperature, logit_standardization=logit_standardization,
                         alpha_temperature=alpha_temperature, reduction=reduction, ignore_index=ignore_index)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
        return F.rld_loss(student_logits, teacher_logits, target, **self._hyper(), num_items_in_batch=num_items_in_batch)


class USKDLoss(_LossModule):
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

    _op, _fields = "uskd", ("alpha", "beta", "mu", "reduction", "ignore_index")

    def __init__(self, in_features: int, num_classes: int, alpha: float = 1.0, beta: float = 0.1,
                 mu: float = 0.005, reduction: str = "batchmean", ignore_index: int = -100) -> None:
        super().__init__(alpha=alpha, beta=beta, mu=mu, reduction=reduction, ignore_index=ignore_index)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, feature: torch.Tensor, student_logits: torch.Tensor, target: torch.Tensor,
                num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
        weak = self.fc(feature)
        return F.uskd_loss(student_logits, weak.to(student_logits.dtype), target, **self._hyper(),
                           num_items_in_batch=num_items_in_batch)

    # extra_repr: nn.Linear's repr (in_features, num_classes) is printed as the child module `fc`.


_TOKEN_MODULE_ARGS = """
        temperature: τ dividing both logits (default 1.0, as TRL).
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``.
        ignore_index: label of the tokens that do not count (default -100).
        softcap: optional c > 0, both logits become ``c·tanh(x/c)`` first (default None)."""
_TAU2_MODULE_ARG = """
        temperature_squared: multiply the loss by τ² (default False, as TRL)."""
_TOKEN_FORWARD = """
    ``forward(student_logits, teacher_logits, labels=None, num_items_in_batch: int | torch.Tensor | None = None)``: ``[..., V]`` logits,
    optional ``[...]`` labels, the optional divisor of ``"batchmean"``; returns the loss."""


def _token_module_doc(cls, extra: str = _TAU2_MODULE_ARG):
    cls.__doc__ = cls.__doc__.replace("    Args:\n", "    Args:" + _TOKEN_MODULE_ARGS + extra + "\n", 1) + _TOKEN_FORWARD
    return cls


class _TokenLossModule(_LossModule):
    _function: str  # the functional loss in fusedkd.functional

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                labels: torch.Tensor | None = None, num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
        return getattr(F, self._function)(student_logits, teacher_logits, labels, **self._hyper(),
                                          num_items_in_batch=num_items_in_batch)


class _TokenKLModule(_TokenLossModule):
    """Forward or reverse KL: the same hyper-parameters."""

    _fields = ("temperature", "reduction", "ignore_index", "softcap", "temperature_squared")

    def __init__(self, temperature: float = 1.0, reduction: str = "batchmean", ignore_index: int = -100,
                 softcap: float | None = None, temperature_squared: bool = False) -> None:
        super().__init__(temperature=temperature, reduction=reduction, ignore_index=ignore_index, softcap=softcap,
                         temperature_squared=temperature_squared)


@_token_module_doc
class ForwardKLLoss(_TokenKLModule):
    """Forward KL at the token level (TRL ``generalized_jsd_loss``, ``beta=0``), see
    :func:`fusedkd.forward_kl_loss`: ``ℓ_i = KL(softmax(t_i/τ) ‖ softmax(s_i/τ))``.

    Args:
    """

    _op, _function = "forward_kl", "forward_kl_loss"


@_token_module_doc
class ReverseKLLoss(_TokenKLModule):
    """Reverse KL at the token level (TRL ``generalized_jsd_loss``, ``beta=1``), see
    :func:`fusedkd.reverse_kl_loss`: ``ℓ_i = KL(softmax(s_i/τ) ‖ softmax(t_i/τ))``.

    Args:
    """

    _op, _function = "reverse_kl", "reverse_kl_loss"


@_token_module_doc
class JSDLoss(_TokenLossModule):
    """Generalized JSD, exactly TRL's ``generalized_jsd_loss``, see :func:`fusedkd.jsd_loss`:
    ``ℓ_i = β KL(p ‖ m) + (1 − β) KL(q ‖ m)``, ``m = β p + (1 − β) q``.

    Args:
        beta: β in [0, 1] (default 0.5; 0 is forward KL, 1 reverse KL).
    """

    _op, _function = "jsd", "jsd_loss"
    _fields = ("beta", "temperature", "reduction", "ignore_index", "softcap", "temperature_squared")

    def __init__(self, beta: float = 0.5, temperature: float = 1.0, reduction: str = "batchmean",
                 ignore_index: int = -100, softcap: float | None = None, temperature_squared: bool = False) -> None:
        super().__init__(beta=beta, temperature=temperature, reduction=reduction, ignore_index=ignore_index,
                         softcap=softcap, temperature_squared=temperature_squared)


class TVDLoss(_TokenLossModule):
    """Total variation distance (Liger-Kernel ``LigerTVDLoss``, on logits), see :func:`fusedkd.tvd_loss`:
    ``ℓ_i = ½ Σ_j |p_j − q_j|``.

    Args:
    """

    _op, _function = "tvd", "tvd_loss"
    _fields = ("temperature", "reduction", "ignore_index", "softcap")

    def __init__(self, temperature: float = 1.0, reduction: str = "batchmean", ignore_index: int = -100,
                 softcap: float | None = None) -> None:
        super().__init__(temperature=temperature, reduction=reduction, ignore_index=ignore_index, softcap=softcap)


_token_module_doc(TVDLoss, "")


class TopKKDLoss(_LossModule):
    """KD from a sparse teacher's top-k log-probabilities, see :func:`fusedkd.topk_kd_loss`.

    Args:
        temperature: τ dividing the student's logits (default 1.0).
        tail: ``"ghost"`` (default, Megatron-LM's ghost token), ``"renormalize"``, ``"renormalize_both"``
            or ``"none"``.
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``.
        ignore_index: label of the tokens that do not count (default -100).
        softcap: optional c > 0 capping the student's logits (default None).

    ``forward(student_logits, teacher_topk_logprobs, teacher_topk_indices, labels=None,
    num_items_in_batch=None)`` → the loss (fp32; fp64 for fp64 logits).
    """

    _op = "topk_kd"
    _fields = ("temperature", "tail", "reduction", "ignore_index", "softcap")

    def __init__(self, temperature: float = 1.0, tail: str = "ghost", reduction: str = "batchmean",
                 ignore_index: int = -100, softcap: float | None = None) -> None:
        super().__init__(temperature=temperature, tail=tail, reduction=reduction, ignore_index=ignore_index,
                         softcap=softcap)

    def forward(self, student_logits: torch.Tensor, teacher_topk_logprobs: torch.Tensor,
                teacher_topk_indices: torch.Tensor, labels: torch.Tensor | None = None,
                num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
        return F.topk_kd_loss(student_logits, teacher_topk_logprobs, teacher_topk_indices, labels, **self._hyper(),
                              num_items_in_batch=num_items_in_batch)


class CrossEntropyLoss(_LossModule):
    """Hard-label cross-entropy of the student (fused, with its gradient), see
    :func:`fusedkd.cross_entropy_loss`: ``ℓ_i = lse(s_i) − s_iy``.

    Args:
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``.
        ignore_index: label of the rows that count for nothing (default -100).

    ``forward(student_logits, target, num_items_in_batch=None)`` → the loss (fp32; fp64 for fp64 logits).
    """

    _op, _fields = "cross_entropy", ("reduction", "ignore_index")

    def __init__(self, reduction: str = "batchmean", ignore_index: int = -100) -> None:
        super().__init__(reduction=reduction, ignore_index=ignore_index)

    def forward(self, student_logits: torch.Tensor, target: torch.Tensor,
                num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
        return F.cross_entropy_loss(student_logits, target, **self._hyper(), num_items_in_batch=num_items_in_batch)


class TfNKDLoss(_LossModule):
    """Teacher-free NKD (the NKD paper's v1, cls_KD), see :func:`fusedkd.tfnkd_loss`:
    ``ℓ_i = −w_i log p_i``, ``w_i = p_i + 1 − mean_j p_j`` (detached).

    Args:
        reduction: ``"batchmean"`` (default), ``"sum"`` or ``"none"``.
        ignore_index: label of the rows that count for nothing (default -100).

    ``forward(student_logits, target)`` → the loss (fp32; fp64 for fp64 logits).
    """

    _op, _fields = "cross_entropy", ("reduction", "ignore_index")

    def __init__(self, reduction: str = "batchmean", ignore_index: int = -100) -> None:
        super().__init__(reduction=reduction, ignore_index=ignore_index)

    def forward(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.tfnkd_loss(student_logits, target, **self._hyper())


class FusedLinearDistillationLoss(nn.Module):
    """The student's and the teacher's linear heads fused with a fusedkd loss, chunk by chunk, so the
    ``[tokens, vocab]`` logits never exist in full; see :func:`fusedkd.fused_linear_distillation_loss`.
    Liger-Kernel's argument names and hard/soft weighting (``LigerFusedLinearJSDLoss``).

    Args:
        loss: the soft term: ``"kd"``, ``"dkd"``, ``"nkd"``, ``"rld"``, ``"forward_kl"``, ``"reverse_kl"``,
            ``"jsd"`` (default), ``"tvd"``, ``"topk_kd"`` or ``"tfnkd"``.
        chunk_size: rows per chunk (default: chosen from V and H, :func:`fusedkd.fused_linear.default_chunk_size`).
        weight_hard_loss: weight of the student's cross-entropy on the true labels (default 0.5).
        weight_soft_loss: weight of the soft term (default 0.5).
        ignore_index: label of the tokens that count for nothing (default -100).
        reduction: ``"batchmean"`` (default) or ``"sum"``.
        accumulation_dtype: dtype of the weight-gradient accumulators (default float32).
        **loss_kwargs: the soft term's hyper-parameters (e.g. ``beta=0.5, temperature=1.0``).

    ``forward(student_input, student_weight, teacher_input, teacher_weight, true_labels, student_bias=None,
    teacher_bias=None, *, teacher_topk_logprobs=None, teacher_topk_indices=None, num_items_in_batch=None)``
    → the loss (a float32 scalar; float64 for float64 inputs).
    """

    def __init__(self, loss: str = "jsd", chunk_size: int | None = None, weight_hard_loss: float = 0.5,
                 weight_soft_loss: float = 0.5, ignore_index: int = -100, reduction: str = "batchmean",
                 accumulation_dtype: torch.dtype | None = None, **loss_kwargs) -> None:
        super().__init__()
        from . import fused_linear as _fl

        _fl._loss_kwargs(loss, _fl._loss_spec(loss), loss_kwargs)
        self.loss = loss
        self.chunk_size = chunk_size
        self.weight_hard_loss = weight_hard_loss
        self.weight_soft_loss = weight_soft_loss
        self.ignore_index = _integer(ignore_index, "ignore_index")
        self.reduction = reduction
        self.accumulation_dtype = accumulation_dtype
        self.loss_kwargs = dict(loss_kwargs)

    def forward(self, student_input: torch.Tensor, student_weight: torch.Tensor, teacher_input: torch.Tensor | None,
                teacher_weight: torch.Tensor | None, true_labels: torch.Tensor | None,
                student_bias: torch.Tensor | None = None, teacher_bias: torch.Tensor | None = None, *,
                teacher_topk_logprobs: torch.Tensor | None = None, teacher_topk_indices: torch.Tensor | None = None,
                num_items_in_batch: int | torch.Tensor | None = None) -> torch.Tensor:
        from .fused_linear import fused_linear_distillation_loss

        return fused_linear_distillation_loss(
            student_input, student_weight, teacher_input, teacher_weight, true_labels, student_bias, teacher_bias,
            loss=self.loss, weight_hard_loss=self.weight_hard_loss, weight_soft_loss=self.weight_soft_loss,
            ignore_index=self.ignore_index, chunk_size=self.chunk_size, reduction=self.reduction,
            num_items_in_batch=num_items_in_batch, accumulation_dtype=self.accumulation_dtype,
            teacher_topk_logprobs=teacher_topk_logprobs, teacher_topk_indices=teacher_topk_indices,
            **self.loss_kwargs)

    def extra_repr(self) -> str:
        args = dict(loss=self.loss, chunk_size=self.chunk_size, weight_hard_loss=self.weight_hard_loss,
                    weight_soft_loss=self.weight_soft_loss, ignore_index=self.ignore_index, reduction=self.reduction,
                    accumulation_dtype=self.accumulation_dtype, **self.loss_kwargs)
        return ", ".join(f"{k}={v!r}" for k, v in args.items())
