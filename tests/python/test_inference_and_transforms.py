"""Inputs made under torch.inference_mode(), functorch transforms, and the in-place scale_grad_ op
against autograd's rules."""

from __future__ import annotations

import contextlib

import pytest
import torch

import fusedkd
from cases import CASE_IDS, CASES


class _PassThrough(torch.overrides.TorchFunctionMode):
    """Takes the functional API off its plain-eager autograd.Function onto the registered op."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


_PATHS = {"eager_function": contextlib.nullcontext, "registered_op": _PassThrough}


def _as_inference(args, case):
    """The constant inputs (teacher or weak logits that need no gradient, labels) remade under
    torch.inference_mode(), as a teacher forward under inference_mode produces them."""
    out = list(args)
    with torch.inference_mode():
        for k in range(case.n_diff, len(out)):
            out[k] = out[k].detach().clone()
    assert all(a.is_inference() for a in out[case.n_diff :])
    return out


# ----------------------------------------------------------------------------- inference_mode inputs


@pytest.mark.parametrize("path", list(_PATHS))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_inference_mode_teacher_and_labels(case, path):
    args = case.inputs(5, 9, dtype=torch.float64, seed=21)
    diff = args[: case.n_diff]
    expected = case.call(case.fused, args)
    expected_grads = torch.autograd.grad(expected, diff)
    inf_args = list(diff) + _as_inference(args, case)[case.n_diff :]
    with _PATHS[path]():
        loss = case.call(case.fused, inf_args)
        loss.backward(retain_graph=True)
        first = [a.grad.clone() for a in diff]
        loss.backward()  # a second backward through the retained graph recomputes from the saved inputs
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    for a, f, e in zip(diff, first, expected_grads):
        torch.testing.assert_close(f, e, rtol=0, atol=0)
        torch.testing.assert_close(a.grad, 2 * e, rtol=1e-12, atol=0)


@pytest.mark.parametrize("case", [c for c in CASES if c.name == "uskd"], ids=["uskd"])
def test_inference_mode_weak_logits_without_grad(case):
    # USKD's weak logits computed under inference_mode (a frozen head): the student still gets its gradient.
    args = case.inputs(5, 9, dtype=torch.float64, seed=22)
    s = args[0]
    w = args[1].detach()
    expected = case.call(case.fused, [s, w, args[2]])
    (g_expected,) = torch.autograd.grad(expected, s)
    with torch.inference_mode():
        w_inf, y_inf = w.clone(), args[2].clone()
    loss = case.call(case.fused, [s, w_inf, y_inf])
    (g,) = torch.autograd.grad(loss, s)
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    torch.testing.assert_close(g, g_expected, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_inference_mode_teacher_under_torch_compile(case):
    torch._dynamo.reset()
    args = case.inputs(6, 11, seed=23)
    diff = args[: case.n_diff]
    expected = case.call(case.fused, args)
    expected_grads = torch.autograd.grad(expected, diff)
    inf_args = list(diff) + _as_inference(args, case)[case.n_diff :]
    compiled = torch.compile(lambda *a: case.call(case.fused, list(a)), fullgraph=True, backend="aot_eager")
    loss = compiled(*inf_args)
    grads = torch.autograd.grad(loss, diff)
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_inference_mode_teacher_soft_labels():
    # NKD and USKD accept soft labels [N, C]; made under inference_mode they must work as well.
    torch.manual_seed(0)
    s = torch.randn(4, 6, requires_grad=True)
    t, w = torch.randn(4, 6), torch.randn(4, 6, requires_grad=True)
    soft = torch.softmax(torch.randn(4, 6), 1)
    with torch.inference_mode():
        t_inf, soft_inf = t.clone(), soft.clone()
    torch.testing.assert_close(fusedkd.nkd_loss(s, t_inf, soft_inf), fusedkd.nkd_loss(s, t, soft), rtol=0, atol=0)
    loss = fusedkd.uskd_loss(s, w, soft_inf)
    loss.backward()
    torch.testing.assert_close(loss, fusedkd.uskd_loss(s, w, soft), rtol=0, atol=0)
    assert s.grad is not None and w.grad is not None


# ----------------------------------------------------------------------------- functorch transforms


def _kd(x, t):
    return fusedkd.kd_loss(x, t)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("transform", ["grad", "jacrev", "jvp", "jacfwd", "hessian"])
def test_functorch_transforms_other_than_vmap_raise_a_fusedkd_error(case, transform):
    args = case.inputs(3, 5, requires_grad=False)
    rest = args[1:]

    def f(x):
        return case.call(case.fused, [x, *rest])

    x = args[0]
    msg = rf"fusedkd\.{case.fused.__name__}: forward-mode AD and functorch transforms other than vmap are not supported"
    with pytest.raises(RuntimeError, match=msg) as info:
        if transform == "jvp":
            torch.func.jvp(f, (x,), (torch.ones_like(x),))
        else:
            getattr(torch.func, transform)(f)(x)
    assert f"torch.func.{transform}" in str(info.value)


@pytest.mark.parametrize("path", list(_PATHS))
def test_forward_mode_dual_tensors_raise_a_fusedkd_error(path):
    # torch.autograd.forward_ad without functorch: the registered op returned no tangent silently.
    import torch.autograd.forward_ad as fwAD

    s, t = torch.randn(3, 5), torch.randn(3, 5)
    with fwAD.dual_level(), _PATHS[path]():
        dual = fwAD.make_dual(s, torch.ones_like(s))
        with pytest.raises(RuntimeError, match=r"fusedkd\.kd_loss: forward-mode AD"):
            fusedkd.kd_loss(dual, t)
        # Inside a dual level, inputs without a tangent still work.
        torch.testing.assert_close(fusedkd.kd_loss(s, t), fusedkd.reference.kd_loss(s, t))


def test_functorch_error_names_the_supported_alternatives():
    s, t = torch.randn(3, 5), torch.randn(3, 5)
    with pytest.raises(RuntimeError, match=r"forward-mode AD and functorch transforms other than vmap") as info:
        torch.func.jvp(lambda x: _kd(x, t), (s,), (torch.ones_like(s),))
    assert "torch.autograd.grad" in str(info.value)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vmap_matches_a_loop(case):
    # vmap over a leading batch of problems: the same numbers as calling the loss per problem.
    B = 3
    problems = [case.inputs(4, 6, requires_grad=False, seed=30 + b) for b in range(B)]
    stacked = [torch.stack([p[k] for p in problems]) for k in range(len(problems[0]))]
    got = torch.vmap(lambda *a: case.call(case.fused, list(a)))(*stacked)
    expected = torch.stack([case.call(case.fused, p) for p in problems])
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_vmap_with_reduction_none():
    s, t = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    got = torch.vmap(lambda a, b: fusedkd.kd_loss(a, b, reduction="none"))(s, t)
    torch.testing.assert_close(got, torch.stack([fusedkd.kd_loss(s[i], t[i], reduction="none") for i in range(2)]))


# ----------------------------------------------------------------------------- scale_grad_ and autograd


def test_scale_grad_refuses_a_leaf_that_requires_grad():
    leaf = torch.randn(4, 6, requires_grad=True)
    before = leaf.detach().clone()
    with pytest.raises(RuntimeError, match=r"scale_grad_: grad is a leaf tensor that requires grad"):
        torch.ops.fusedkd.scale_grad_(leaf, torch.tensor(2.0))
    torch.testing.assert_close(leaf.detach(), before, rtol=0, atol=0)  # untouched


def test_scale_grad_refuses_a_tensor_in_an_autograd_graph():
    x = torch.randn(4, 6, requires_grad=True) * 1.0  # not a leaf, requires grad
    with pytest.raises(RuntimeError, match=r"scale_grad_: grad requires grad"):
        torch.ops.fusedkd.scale_grad_(x, torch.tensor(2.0))


def test_scale_grad_still_works_where_autograd_has_no_say():
    # Plain tensors, a leaf under no_grad (as an optimizer would), and a detached view of a leaf.
    g = torch.randn(4, 6)
    expected = g * 2
    torch.ops.fusedkd.scale_grad_(g, torch.tensor(2.0))
    torch.testing.assert_close(g, expected, rtol=0, atol=0)
    leaf = torch.randn(4, 6, requires_grad=True)
    with torch.no_grad():
        expected = leaf * 3
        torch.ops.fusedkd.scale_grad_(leaf, torch.tensor(3.0))
    torch.testing.assert_close(leaf.detach(), expected, rtol=0, atol=0)
    with torch.inference_mode():
        g = torch.randn(4, 6)
        expected = g * 0.5
        torch.ops.fusedkd.scale_grad_(g, torch.tensor(0.5))
    torch.testing.assert_close(g, expected, rtol=0, atol=0)


def test_inference_mode_teacher_in_a_compiled_training_step_with_modules():
    # The usual pattern: teacher forward under inference_mode, student step compiled with inductor.
    torch._dynamo.reset()
    torch.manual_seed(0)
    student, teacher = torch.nn.Linear(8, 5), torch.nn.Linear(8, 5)
    dkd, rld = fusedkd.DKDLoss(), fusedkd.RLDLoss(logit_standardization=True)
    x, y = torch.randn(6, 8), torch.randint(0, 5, (6,))
    with torch.inference_mode():
        t, y_inf = teacher(x), y.clone()

    def step(x, t, y):
        s = student(x)
        return dkd(s, t, y) + rld(s, t, y)

    expected = step(x, t.clone(), y)  # a normal tensor: the reference result
    expected.backward()
    g_expected = student.weight.grad.clone()
    student.weight.grad = None
    for fn in (step, torch.compile(step, fullgraph=True)):
        out = fn(x, t, y_inf)
        out.backward()
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(student.weight.grad, g_expected)
        student.weight.grad = None
