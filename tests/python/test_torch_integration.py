"""The ops as torch sees them: opcheck, torch.compile(fullgraph=True), autograd plumbing."""

from __future__ import annotations

import contextlib

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
    # As a raw-op caller uses it: grad_private left at its default (False), since opcheck keeps and
    # compares the gradient outputs (the functional API passes True and discards them).
    assert op._schema.arguments[-1].name == "grad_private" and op_args[-1] is True
    op_args = op_args[:-1]
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


class _PassThrough(torch.overrides.TorchFunctionMode):
    """A torch-function mode that changes nothing but takes the functional API off its plain-eager
    path (an autograd.Function) onto the op with its torch.library autograd, as tracers see it."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


_PATHS = {"eager_function": contextlib.nullcontext, "registered_op": _PassThrough}


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_eager_function_and_registered_op_agree_bit_for_bit(case):
    # Plain eager calls go through an autograd.Function, anything traced through the op and its
    # registered autograd (fusedkd._ops.call_op); both must give the same loss and gradients.
    args = case.inputs(6, 11, seed=5)
    results = {}
    for name, path in _PATHS.items():
        with path():
            loss = case.call(case.fused, args)
            grads = torch.autograd.grad(loss, args[: case.n_diff])
        results[name] = (loss.grad_fn.name(), loss.detach(), grads)
    eager_fn, op_fn = results["eager_function"][0], results["registered_op"][0]
    assert eager_fn.startswith("FusedKD") and not op_fn.startswith("FusedKD"), (eager_fn, op_fn)
    torch.testing.assert_close(results["eager_function"][1], results["registered_op"][1], rtol=0, atol=0)
    for a, b in zip(results["eager_function"][2], results["registered_op"][2]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("path", list(_PATHS))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_unit_upstream_gradient_hands_over_the_saved_gradient_safely(case, path):
    with _PATHS[path]():
        _check_gradient_hand_over(case)


def _check_gradient_hand_over(case):
    # grad_output == 1 on the CPU returns the op's saved gradient instead of a scaled copy; this
    # must not leak aliasing: a retained graph run twice accumulates twice, the second run sees
    # an unmodified saved gradient, and .grad accumulates into its own storage.
    args = case.inputs(5, 9, dtype=torch.float64)
    expected = torch.autograd.grad(2.0 * case.call(case.fused, args), args[: case.n_diff])
    expected = [e / 2.0 for e in expected]  # the scaled (copying) path, brought back to unit upstream
    loss = case.call(case.fused, args)
    loss.backward(retain_graph=True)
    first = [a.grad.clone() for a in args[: case.n_diff]]
    loss.backward(retain_graph=True)  # the first backward handed its gradient over: recomputed
    loss.backward()
    for a, e, f in zip(args[: case.n_diff], expected, first):
        torch.testing.assert_close(f, e, rtol=1e-12, atol=0)
        torch.testing.assert_close(a.grad, 3 * e, rtol=1e-12, atol=0)
    # torch.autograd.grad on a retained graph, then backward: each gets the whole gradient.
    for a in args[: case.n_diff]:
        a.grad = None
    loss = case.call(case.fused, args)
    got = torch.autograd.grad(loss, args[: case.n_diff], retain_graph=True)
    loss.backward()
    for a, e, g in zip(args[: case.n_diff], expected, got):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=0)
        torch.testing.assert_close(a.grad, e, rtol=1e-12, atol=0)
    # A fresh graph without retain_graph: .grad is adopted, then accumulated into on the next step.
    for a in args[: case.n_diff]:
        a.grad = None
    case.call(case.fused, args).backward()
    adopted = [a.grad for a in args[: case.n_diff]]
    case.call(case.fused, args).backward()
    for a, e, g in zip(args[: case.n_diff], expected, adopted):
        assert a.grad is g  # accumulated in place into the adopted tensor, which nothing else holds
        torch.testing.assert_close(a.grad, 2 * e, rtol=1e-12, atol=0)


def test_unit_upstream_gradient_with_the_ops_gradient_output_kept():
    # The raw op's gradient output, held by the caller, is the tensor autograd saved: the
    # backward may return it, but the caller's copy must stay the unscaled gradient afterwards.
    s = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 6, dtype=torch.float64)
    loss, grad = torch.ops.fusedkd.kd(s, t, 4.0, False, "batchmean", True)
    kept = grad.clone()
    loss.backward()
    torch.testing.assert_close(s.grad, kept, rtol=0, atol=0)
    s.grad.mul_(3.0)  # an optimizer-style in-place update of .grad
    torch.testing.assert_close(grad, kept, rtol=0, atol=0)
    # An upstream gradient of 2: the raw op's backward scales out of place (grad_private=False).
    s.grad = None
    loss, grad = torch.ops.fusedkd.kd(s, t, 4.0, False, "batchmean", True)
    (2.0 * loss).backward()
    torch.testing.assert_close(grad, kept, rtol=0, atol=0)
    torch.testing.assert_close(s.grad, 2.0 * kept, rtol=0, atol=0)


# ----------------------------------------------------------------------------- backward's scaling

_SCALE_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def _loss_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


@pytest.mark.parametrize("dtype", _SCALE_DTYPES, ids=str)
def test_scale_grad_op_scales_in_place_and_skips_unit_rows(dtype):
    # g[i, :] *= f (a scalar) or f[i] (reduction "none"), computed in the loss's dtype and rounded
    # once to g's dtype; rows whose factor is exactly 1 keep their bits (not rewritten).
    torch.manual_seed(0)
    g0 = (torch.randn(7, 13, dtype=torch.float64) * 3).to(dtype)
    acc = _loss_dtype(dtype)

    def expected(f):
        f = f if f.dim() == 0 else f[:, None]
        return (g0.to(acc) * f).to(dtype)

    for f in [torch.tensor(2.5, dtype=acc), torch.tensor(1 / 3, dtype=acc), torch.tensor(65536.0, dtype=acc),
              torch.tensor([1, 0, -2, 1, 1 / 3, 1e-3, 1], dtype=acc),  # per row, some rows at 1
              torch.tensor(1 / 3, dtype=acc).expand(7)]:                # [N] with stride 0 ("none" + sum)
        g = g0.clone()
        ptr = g.data_ptr()
        torch.ops.fusedkd.scale_grad_(g, f)
        assert g.data_ptr() == ptr
        torch.testing.assert_close(g, expected(f), rtol=0, atol=0)
    # A factor of 1 leaves even a NaN payload and -0.0 as they were (the rows are not touched).
    g = g0.clone()
    g[0, 0], g[1, 1] = float("nan"), -0.0
    before = g.clone()
    torch.ops.fusedkd.scale_grad_(g, torch.tensor(1.0, dtype=acc))
    bits = {8: torch.int64, 4: torch.int32, 2: torch.int16}[dtype.itemsize]
    assert torch.equal(g.view(bits), before.view(bits))
    # Strided rows (a column slice keeps contiguous columns) and an empty batch.
    big = (torch.randn(5, 20, dtype=torch.float64)).to(dtype)
    view, untouched = big[:, 3:15], big.clone()
    torch.ops.fusedkd.scale_grad_(view, torch.tensor(-2.0, dtype=acc))
    torch.testing.assert_close(big[:, 3:15], (untouched[:, 3:15].to(acc) * -2).to(dtype), rtol=0, atol=0)
    torch.testing.assert_close(big[:, :3], untouched[:, :3], rtol=0, atol=0)
    torch.testing.assert_close(big[:, 15:], untouched[:, 15:], rtol=0, atol=0)
    torch.ops.fusedkd.scale_grad_(torch.empty(0, 13, dtype=dtype), torch.empty(0, dtype=acc))


def test_scale_grad_op_errors_name_the_argument():
    g = torch.randn(4, 6)
    with pytest.raises(RuntimeError, match="grad_output must be float32"):
        torch.ops.fusedkd.scale_grad_(g, torch.tensor(2.0, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"grad_output must be a scalar or have shape \[N\] = \[4\]"):
        torch.ops.fusedkd.scale_grad_(g, torch.ones(3))
    with pytest.raises(RuntimeError, match="grad must have contiguous columns"):
        torch.ops.fusedkd.scale_grad_(torch.randn(6, 4).t(), torch.tensor(2.0))
    with pytest.raises(RuntimeError, match="grad must be 2-D"):
        torch.ops.fusedkd.scale_grad_(torch.randn(4), torch.tensor(2.0))
    with pytest.raises(RuntimeError, match="grad must be float32, float16, bfloat16 or float64"):
        torch.ops.fusedkd.scale_grad_(torch.zeros(4, 6, dtype=torch.int32), torch.tensor(2.0))


@pytest.mark.parametrize("per_row", [False, True], ids=["scalar", "per_row"])
def test_scale_grad_opcheck(per_row):
    g = torch.randn(5, 9)
    f = torch.randn(5) if per_row else torch.tensor(0.75)
    torch.library.opcheck(torch.ops.fusedkd.scale_grad_.default, (g, f))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("path", list(_PATHS))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_upstream_gradient_scaling_on_both_paths(case, path, dtype):
    # Upstream gradients that are not 1 (a loss weight, an AMP-style loss scale, per-row weights
    # with "none", the stride-0 grad_output of "none" + sum): every gradient is the unit-upstream
    # gradient times the factor, in the loss's dtype, rounded once. Both paths of the functional API
    # scale in place (fusedkd::scale_grad_, grad_private=True), so both are exact.
    args = case.inputs(6, 11, dtype=dtype, seed=3)
    diff = args[: case.n_diff]
    acc = _loss_dtype(dtype)
    w = torch.tensor([0.5, 1.0, 0.0, -3.0, 1.0, 1 / 3], dtype=acc)
    tol = dict(rtol=0, atol=0)
    with _PATHS[path]():
        unit = torch.autograd.grad(case.call(case.fused, args), diff)
        unit_rows = torch.autograd.grad(case.call(case.fused, args, reduction="none").sum(), diff)
        for factor in [3.5, 65536.0, 1 / 3]:
            got = torch.autograd.grad(factor * case.call(case.fused, args), diff)
            for g, u in zip(got, unit):
                torch.testing.assert_close(g, (u.to(acc) * torch.tensor(factor, dtype=acc)).to(dtype), **tol)
        got = torch.autograd.grad((w * case.call(case.fused, args, reduction="none")).sum(), diff)
        for g, u in zip(got, unit_rows):
            torch.testing.assert_close(g, (u.to(acc) * w[:, None]).to(dtype), **tol)


@pytest.mark.parametrize("path", list(_PATHS))
def test_create_graph_warns_that_the_gradient_is_first_order(path):
    # Double backward is not supported: the gradient comes out of the op, not out of a graph. With
    # create_graph=True the first-order gradient is still right, and a warning says that
    # second-order terms through the loss are zero.
    s = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 6, dtype=torch.float64)
    with _PATHS[path]():
        (expected,) = torch.autograd.grad(3.0 * fusedkd.kd_loss(s, t), s)
        with pytest.warns(UserWarning, match="first order only"):
            (g,) = torch.autograd.grad(3.0 * fusedkd.kd_loss(s, t), s, create_graph=True)
    torch.testing.assert_close(g, expected, rtol=0, atol=0)
    assert not g.requires_grad


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_compiled_step_scales_the_saved_gradient_in_place(case):
    # Under torch.compile (inductor) the functional API's backward is the in-place scale_grad_ on
    # the op's saved gradient, re-inplaced by inductor (no copy of [N, C]); the compiled step's
    # gradients equal the eager ones bit for bit, for a loss weight and for per-row weights.
    torch._dynamo.reset()
    args = case.inputs(6, 11, seed=8)
    diff = args[: case.n_diff]
    w = torch.linspace(-1.0, 2.0, 6)

    def step(*a):
        a = list(a)
        return 0.9 * case.call(case.fused, a) + (w * case.call(case.fused, a, reduction="none")).sum()

    expected = torch.autograd.grad(step(*args), diff)
    compiled = torch.compile(step, fullgraph=True)
    from torch._inductor.utils import run_and_get_code

    got, codes = run_and_get_code(lambda: torch.autograd.grad(compiled(*args), diff))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    assert any("fusedkd.scale_grad_" in code for code in codes), "the compiled backward should scale in place"


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_raw_op_gradient_output_kept_under_compile(backend):
    # A raw-op caller (grad_private left False) may return the op's gradient output from a compiled
    # function and keep it: backward with an upstream gradient of 2 must not scale it in place.
    torch._dynamo.reset()
    s = torch.randn(4, 6, requires_grad=True)
    t = torch.randn(4, 6)

    def f(s, t):
        loss, grad = torch.ops.fusedkd.kd(s, t, 4.0, False, "batchmean", True)
        return 2.0 * loss, grad

    loss, grad = torch.compile(f, fullgraph=True, backend=backend)(s, t)
    kept = grad.clone()
    loss.backward()
    torch.testing.assert_close(grad, kept, rtol=0, atol=0)
    torch.testing.assert_close(s.grad, 2.0 * kept)
