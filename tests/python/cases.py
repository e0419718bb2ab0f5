"""One description per loss, so every generic test runs over every loss.

A case knows how to build inputs, how to call the fused function and the reference with the
same arguments, and which positional inputs are differentiable.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

import fusedkd
from fusedkd import reference

# Tolerances per input dtype, for values and gradients, relative to the float64 reference:
#   float64: 1e-10 (rel) — same math, different summation order;
#   float32: 1e-5 rel / 1e-6 abs — fp32 accumulation in both;
#   float16 / bfloat16: the reference runs in float64 on the *rounded* inputs, so only fp32
#   accumulation and the rounding of the written gradient (2^-11 / 2^-8 relative) remain.
TOL = {
    torch.float64: dict(rtol=1e-10, atol=1e-12),
    torch.float32: dict(rtol=1e-5, atol=1e-6),
    torch.float16: dict(rtol=2e-3, atol=1e-5),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-4),
}


@dataclasses.dataclass
class Case:
    name: str
    fused: Callable
    ref: Callable
    has_teacher: bool = True
    has_target: bool = True
    kwargs: dict = dataclasses.field(default_factory=dict)
    n_diff: int = 1  # leading logits inputs that receive a gradient
    min_classes: int = 2

    def inputs(self, N, C, dtype=torch.float32, device="cpu", scale=3.0, seed=0, requires_grad=True):
        g = torch.Generator().manual_seed(seed)
        s = (torch.randn(N, C, generator=g, dtype=torch.float64) * scale).to(dtype).to(device)
        second = (torch.randn(N, C, generator=g, dtype=torch.float64) * scale).to(dtype).to(device)
        y = torch.randint(0, C, (N,), generator=g).to(device)
        s.requires_grad_(requires_grad)
        if self.n_diff > 1:
            second.requires_grad_(requires_grad)
        args = [s, second] if self.has_teacher else [s]
        if self.has_target:
            args.append(y)
        return args

    def call(self, fn, args, **kw):
        return fn(*args, **{**self.kwargs, **kw})


CASES = [
    Case("kd", fusedkd.kd_loss, reference.kd_loss, has_target=False, min_classes=1),
    Case("kd_t1", fusedkd.kd_loss, reference.kd_loss, has_target=False, kwargs=dict(temperature=1.0), min_classes=1),
    Case("dkd", fusedkd.dkd_loss, reference.dkd_loss),
    Case("dkd_imagenet", fusedkd.dkd_loss, reference.dkd_loss, kwargs=dict(beta=0.5, temperature=1.0)),
    Case("kd_std", fusedkd.kd_loss, reference.kd_loss, has_target=False, kwargs=dict(logit_standardization=True),
         min_classes=2),
    Case("dkd_std", fusedkd.dkd_loss, reference.dkd_loss, kwargs=dict(logit_standardization=True, temperature=2.0)),
]

CASES += [
    Case("nkd", fusedkd.nkd_loss, reference.nkd_loss),
    Case("nkd_t4", fusedkd.nkd_loss, reference.nkd_loss, kwargs=dict(temperature=4.0, gamma=1.0)),
    Case("rld", fusedkd.rld_loss, reference.rld_loss),
    Case("rld_std", fusedkd.rld_loss, reference.rld_loss, kwargs=dict(logit_standardization=True, temperature=2.0)),
    Case("uskd", fusedkd.uskd_loss, reference.uskd_loss, n_diff=2),
    Case("reverse_kl", fusedkd.reverse_kl_loss, reference.reverse_kl_loss, min_classes=1),
    Case("reverse_kl_t2", fusedkd.reverse_kl_loss, reference.reverse_kl_loss, kwargs=dict(temperature=2.0),
         min_classes=1),
    Case("reverse_kl_nolabels", fusedkd.reverse_kl_loss, reference.reverse_kl_loss, has_target=False, min_classes=1),
]

# The token-level losses (docs/math_token.md): every op, β in the mixture's interior, a softcap, τ² and τ.
CASES += [
    Case("forward_kl", fusedkd.forward_kl_loss, reference.forward_kl_loss, min_classes=1),
    Case("forward_kl_cap_tau2", fusedkd.forward_kl_loss, reference.forward_kl_loss, min_classes=1,
         kwargs=dict(temperature=2.0, temperature_squared=True, softcap=4.0)),
    Case("reverse_kl_cap", fusedkd.reverse_kl_loss, reference.reverse_kl_loss, min_classes=1,
         kwargs=dict(temperature=0.5, softcap=3.0)),
    Case("jsd", fusedkd.jsd_loss, reference.jsd_loss, min_classes=1),
    Case("jsd_b01_t2", fusedkd.jsd_loss, reference.jsd_loss, min_classes=1, kwargs=dict(beta=0.1, temperature=2.0)),
    Case("jsd_b09_cap_tau2", fusedkd.jsd_loss, reference.jsd_loss, min_classes=1,
         kwargs=dict(beta=0.9, softcap=5.0, temperature_squared=True, temperature=0.5)),
    Case("jsd_nolabels", fusedkd.jsd_loss, reference.jsd_loss, has_target=False, min_classes=1),
    Case("tvd", fusedkd.tvd_loss, reference.tvd_loss, min_classes=1),
    Case("tvd_cap_t2", fusedkd.tvd_loss, reference.tvd_loss, min_classes=1, kwargs=dict(temperature=2.0, softcap=3.0)),
]

# Teacher-free: the student's hard-label cross-entropy (tf-NKD's row program).
CASES += [
    Case("cross_entropy", fusedkd.cross_entropy_loss, reference.cross_entropy_loss, has_teacher=False, min_classes=1),
]

CASE_IDS = [c.name for c in CASES]
# The loss op behind each case (fusedkd._specs.LOSS_OPS: one line per op, naming its function).
from fusedkd._specs import LOSS_OPS  # noqa: E402

SPEC_OF = {c.name: next(op for op in LOSS_OPS if op.function == c.fused.__name__) for c in CASES}


def label_name(case) -> str:
    """The case's labels argument as its op's schema and messages name it: target or labels."""
    from fusedkd._ops import OP_ARGS

    return OP_ARGS[SPEC_OF[case.name].name].labels
LABELLED = [c for c in CASES if c.has_target]
# USKD and the cross-entropy have no temperature.
WITH_TEMPERATURE = [c for c in CASES if not c.name.startswith("uskd") and c.name != "cross_entropy"]
WITH_SECOND = [c for c in CASES if c.has_teacher]  # a second logits input (teacher or weak logits)
WITH_MODULE = [c for c in CASES if not c.name.startswith("uskd")]  # USKDLoss owns a linear layer
# USKD's gradient treats its soft target (a batch statistic of the student) and its Zipf weights
# (a ranking of the student) as constants, exactly as the reference detaches them: it is not the
# derivative of the loss value, so finite differences cannot check it. Its gradient is checked
# against the reference's autograd gradient instead (test_matches_float64_reference).
GRADCHECK = [c for c in CASES if not c.name.startswith("uskd")]
