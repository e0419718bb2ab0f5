"""float16 gradients under loss scaling (issue #15, item 4): for any grad_output the student's (and
USKD's weak) gradient is the exact gradient correctly rounded to float16, as a GradScaler step needs.

The ops keep a float16 student's gradient in float32 (grad_t, include/fusedkd/numeric.hpp) and round
it once, in the backward, after the multiplication by grad_output. Stored in float16 at batchmean
scale (1/N), many entries were subnormal or 0 before the scale multiplied them: relative L1 error
~1.2e-2 against the correctly rounded gradient, and up to 42% of nonzero entries lost.

Expected: the float64 reference gradient of ``scale · loss`` on the same (float16-rounded) inputs,
rounded to float16. Tolerances: relative L1 error ≤ 5e-4 (a correctly rounded float16 gradient is
within 2^-11 of it per entry; fp32 accumulation moves a few entries by one ulp) and no entry 0 where
the expected one is not.
"""

from __future__ import annotations

import pytest
import torch

from cases import CASE_IDS, CASES

SCALES = [1.0, 2.0**16]  # grad_output 1 (no scaler) and GradScaler's initial scale


def _grads(case, fn, args, scale):
    loss = case.call(fn, args)
    diff = args[: case.n_diff]
    return torch.autograd.grad(loss * scale, diff)


@pytest.mark.parametrize("scale", SCALES, ids=["x1", "x65536"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_fp16_gradient_is_correctly_rounded(case, scale):
    N, C = 512, 1000
    args = case.inputs(N, C, dtype=torch.float16, seed=11)
    got = _grads(case, case.fused, args, scale)
    args64 = [a.detach().double().requires_grad_(a.requires_grad) if a.is_floating_point() else a for a in args]
    expected = _grads(case, case.ref, args64, scale)
    for g, e64 in zip(got, expected):
        assert g.dtype == torch.float16
        e = e64.to(torch.float16)
        rel_l1 = (g.double() - e.double()).abs().sum() / e.double().abs().sum()
        assert rel_l1 <= 5e-4, f"relative L1 error {rel_l1:.3g}"
        lost = ((g == 0) & (e != 0)).double().mean().item()
        assert lost == 0.0, f"{lost:.1%} of the nonzero entries are 0"


def test_raw_op_writes_a_float32_gradient_for_float16():
    import fusedkd

    s = torch.randn(4, 10).half()
    loss, grad = fusedkd.ops.kd(s, s.clone(), 4.0, False, "batchmean", True)
    assert grad.dtype == torch.float32 and loss.dtype == torch.float32
    _, grad_bf16 = fusedkd.ops.kd(s.bfloat16(), s.bfloat16(), 4.0, False, "batchmean", True)
    assert grad_bf16.dtype == torch.bfloat16  # bfloat16 keeps its own type (fp32's exponent range)
