"""The loss ops, one line each: the list the Python op layer is built from.

Each op ``fusedkd::<name>`` is declared once, in C++ (its descriptor in
``include/fusedkd/losses/<loss>.hpp`` and its line in ``include/fusedkd/registry.hpp``, from which
``bindings/`` generates the schema; top-k KD's is ``bindings/topk_op.hpp``). Its schema says the rest:
the logits it takes (``student``, then ``teacher`` or ``weak``, or nothing for a teacher-free loss; top-k
KD: ``teacher_topk_logprobs`` and ``teacher_topk_indices``), its labels (``target``, or ``labels`` for the token-level losses; ``Tensor?``
when optional), its hyper-parameters with their types, ``reduction``, ``ignore_index`` (with labels),
``compute_grad`` and ``grad_private``, and its outputs ``(loss, grad_student[, grad_weak])``: the
inputs named by the ``grad_<input>`` outputs receive a gradient. ``_ops.py`` reads it once at import
and builds the fake kernels, the autograd formulas and the argument handling of the public
functions (``functional.py``, ``modules.py``) from it.

A line here names the op's public function, its module and its pure-PyTorch reference
(``reference.py``).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class LossOp:
    name: str  # fusedkd::<name>
    function: str  # fusedkd.<function>: the documented functional API
    module: str  # fusedkd.<module>: its nn.Module
    reference: str  # fusedkd.reference.<reference>: the pure-PyTorch reference it is tested against


LOSS_OPS = (
    LossOp("kd", "kd_loss", "KDLoss", "kd_loss"),
    LossOp("dkd", "dkd_loss", "DKDLoss", "dkd_loss"),
    LossOp("nkd", "nkd_loss", "NKDLoss", "nkd_loss"),
    LossOp("rld", "rld_loss", "RLDLoss", "rld_loss"),
    LossOp("uskd", "uskd_loss", "USKDLoss", "uskd_loss"),
    LossOp("reverse_kl", "reverse_kl_loss", "ReverseKLLoss", "reverse_kl_loss"),
    LossOp("forward_kl", "forward_kl_loss", "ForwardKLLoss", "forward_kl_loss"),
    LossOp("jsd", "jsd_loss", "JSDLoss", "jsd_loss"),
    LossOp("tvd", "tvd_loss", "TVDLoss", "tvd_loss"),
    LossOp("topk_kd", "topk_kd_loss", "TopKKDLoss", "topk_kd_loss"),
    LossOp("cross_entropy", "cross_entropy_loss", "CrossEntropyLoss", "cross_entropy_loss"),
)
