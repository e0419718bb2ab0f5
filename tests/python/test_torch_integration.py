"""The ops as torch sees them: opcheck, torch.compile(fullgraph=True), autograd plumbing."""

from __future__ import annotations

import pytest
import torch

import fusedkd
from cases import CASE_IDS, CASES


def _op_and_args(case, args, **kw):
    """Run the functional API once under a dispatch spy to get the op call it makes."""
    calls = []

    class Spy(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, a=(), k=None):
            if func.namespace == "fusedkd":
                calls.append((func, a))
            return func(*a, **(k or {}))

    with Spy():
        case.call(case.fused, args, **kw)
    assert len(calls) == 1, calls
    return calls[0]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("reduction", ["batchmean", "none"])
def test_opcheck(case, reduction):
    args = case.inputs(5, 9, seed=11)
    op, op_args = _op_and_args(case, args, reduction=reduction)
    op_args = [a.detach().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a for a in op_args]
    for k in range(case.n_diff):
        op_args[k].requires_grad_(True)
    torch.library.opcheck(op, tuple(op_args))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_torch_compile_fullgraph_same_numbers(case):
    torch._dynamo.reset()
    args = case.inputs(7, 13, seed=12)
    eager = case.call(case.fused, args)
    eager_grads = torch.autograd.grad(eager, args[: case.n_diff])
    compiled = torch.compile(lambda *a: case.call(case.fused, list(a)), fullgraph=True, backend="aot_eager")
    out = compiled(*args)
    grads = torch.autograd.grad(out, args[: case.n_diff])
    torch.testing.assert_close(out, eager, rtol=0, atol=0)
    for g, ge in zip(grads, eager_grads):
        torch.testing.assert_close(g, ge, rtol=0, atol=0)


def test_torch_compile_inductor_in_a_training_step():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 5)
    x, t, y = torch.randn(6, 8), torch.randn(6, 5), torch.randint(0, 5, (6,))

    def step(x, t, y):
        return fusedkd.dkd_loss(model(x), t, y) + fusedkd.kd_loss(model(x), t)

    eager = step(x, t, y)
    eager.backward()
    g_eager = model.weight.grad.clone()
    model.weight.grad = None
    out = torch.compile(step, fullgraph=True)(x, t, y)
    out.backward()
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(model.weight.grad, g_eager)


def test_teacher_gets_no_gradient():
    s = torch.randn(4, 6, requires_grad=True)
    t = torch.randn(4, 6, requires_grad=True)
    fusedkd.kd_loss(s, t).backward()
    assert s.grad is not None and t.grad is None


def test_upstream_gradient_scales_the_saved_gradient():
    s = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 6, dtype=torch.float64)
    (g1,) = torch.autograd.grad(fusedkd.kd_loss(s, t), s)
    (g3,) = torch.autograd.grad(3.5 * fusedkd.kd_loss(s, t), s)
    torch.testing.assert_close(g3, 3.5 * g1)
    w = torch.arange(4, dtype=torch.float64)
    (gw,) = torch.autograd.grad((w * fusedkd.kd_loss(s, t, reduction="none")).sum(), s)
    (gn,) = torch.autograd.grad(fusedkd.kd_loss(s, t, reduction="none").sum(), s)
    torch.testing.assert_close(gw, gn * w[:, None])
