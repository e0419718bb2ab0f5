"""The loss ops, one line each: the list the Python op layer (fake kernels, autograd) is built from.

Each op ``fusedkd::<name>`` (schemas in ``bindings/library.cpp``) takes its logits and labels first,
then its hyper-parameters, ``reduction``, ``compute_grad`` and ``grad_private``, and returns
``(loss, grad_0, ..., grad_{k-1})``: the gradients of its first k inputs, the ``differentiable`` ones.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class LossOp:
    name: str  # fusedkd::<name>
    differentiable: tuple  # the leading logits inputs that receive a gradient, in schema order


LOSS_OPS = (
    LossOp("kd", ("student",)),
    LossOp("dkd", ("student",)),
    LossOp("nkd", ("student",)),
    LossOp("rld", ("student",)),
    LossOp("uskd", ("student", "weak")),
)
