"""Every fused loss vs its pure-PyTorch reference: values, gradients, reductions, dtypes,
ignore_index, non-contiguous inputs, empty batches, gradcheck, opcheck and torch.compile."""

from __future__ import annotations

import pytest
import torch

from cases import CASE_IDS, CASES, GRADCHECK, LABELLED, SPEC_OF, TOL, WITH_MODULE


def _grads(case, out, args):
    diff = args[: case.n_diff]
    return torch.autograd.grad(out.sum(), diff)


def _as_reference_inputs(case, args, dtype=torch.float64):
    """The same (rounded) inputs, upcast, as fresh leaves for the reference."""
    ref = [a.detach().to(dtype) if a.is_floating_point() else a for a in args]
    for a in ref[: case.n_diff]:
        a.requires_grad_(True)
    return ref


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
def test_matches_float64_reference(case, dtype, reduction):
    args = case.inputs(16, 37, dtype=dtype, seed=1)
    out = case.call(case.fused, args, reduction=reduction)
    assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    ref_args = _as_reference_inputs(case, args)
    ref = case.call(case.ref, ref_args, reduction=reduction)
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])
    for g, gr in zip(_grads(case, out, args), _grads(case, ref, ref_args)):
        assert g.dtype == dtype
        torch.testing.assert_close(g.double(), gr, **TOL[dtype])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("C", [2, 3, 10, 1000, 50000])
def test_class_counts_float32(case, C):
    N = 4 if C == 50000 else 8
    args = case.inputs(N, C, seed=C)
    out = case.call(case.fused, args)
    ref_args = _as_reference_inputs(case, args, torch.float32)
    ref = case.call(case.ref, ref_args)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    for g, gr in zip(_grads(case, out, args), _grads(case, ref, ref_args)):
        torch.testing.assert_close(g, gr, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_extreme_logits(case):
    # Logits of ±1e4: the fused path stays finite and agrees with float64 (which the float32
    # reference cannot: its softmax of x/τ underflows to log(0)).
    args = case.inputs(8, 50, dtype=torch.float64, scale=1e4, seed=3)
    out = case.call(case.fused, args, reduction="none")
    ref_args = _as_reference_inputs(case, args)
    ref = case.call(case.ref, ref_args, reduction="none")
    assert torch.isfinite(out).all()
    finite = torch.isfinite(ref)
    torch.testing.assert_close(out[finite], ref[finite], rtol=1e-9, atol=1e-6)
    f32 = [a.detach().float() if a.is_floating_point() else a for a in args]
    for a in f32[: case.n_diff]:
        a.requires_grad_(True)
    out32 = case.call(case.fused, f32, reduction="none")
    assert torch.isfinite(out32).all()
    torch.testing.assert_close(out32.double()[finite], ref[finite], rtol=1e-4, atol=1e-3 * 1e4)
    for g in _grads(case, out32, f32):
        assert torch.isfinite(g).all()


@pytest.mark.parametrize("case", GRADCHECK, ids=[c.name for c in GRADCHECK])
def test_gradcheck_float64(case):
    args = case.inputs(3, 5, dtype=torch.float64, seed=4)
    fn = lambda *diff: case.call(case.fused, list(diff) + args[case.n_diff :])  # noqa: E731
    assert torch.autograd.gradcheck(fn, tuple(args[: case.n_diff]))
    fn_none = lambda *diff: case.call(case.fused, list(diff) + args[case.n_diff :], reduction="none")  # noqa: E731
    assert torch.autograd.gradcheck(fn_none, tuple(args[: case.n_diff]))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_non_contiguous_inputs(case):
    args = case.inputs(12, 20, seed=5)
    dense = case.call(case.fused, args)
    dense_grads = _grads(case, dense, args)
    # Transposed storage (column stride != 1) and sliced rows (row stride > C).
    strided = []
    for k, a in enumerate(args):
        if a.dim() == 2:
            t = a.detach().t().contiguous().t()
            wide = torch.zeros(a.shape[0] * 2, a.shape[1] + 3, dtype=a.dtype)
            wide[::2, 1:-2] = a.detach()
            v = wide[::2, 1:-2] if k == 1 else t
            assert not v.is_contiguous()
            strided.append(v.requires_grad_(k < case.n_diff))
        else:
            y = torch.stack([a, a], 1)[:, 0]
            assert not y.is_contiguous() or y.numel() <= 1
            strided.append(y)
    out = case.call(case.fused, strided)
    torch.testing.assert_close(out, dense)
    for g, gd in zip(_grads(case, out, strided), dense_grads):
        torch.testing.assert_close(g, gd)


@pytest.mark.parametrize("case", LABELLED, ids=[c.name for c in LABELLED])
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
def test_ignore_index(case, reduction):
    args = case.inputs(10, 9, seed=6)
    y = args[-1].clone()
    y[[1, 4, 7]] = -1
    args[-1] = y
    out = case.call(case.fused, args, reduction=reduction, ignore_index=-1)
    ref_args = _as_reference_inputs(case, args)
    ref = case.call(case.ref, ref_args, reduction=reduction, ignore_index=-1)
    torch.testing.assert_close(out.double(), ref, **TOL[torch.float32])
    grads = _grads(case, out, args)
    for g, gr in zip(grads, _grads(case, ref, ref_args)):
        torch.testing.assert_close(g.double(), gr, **TOL[torch.float32])
    assert (grads[0][[1, 4, 7]] == 0).all()
    if reduction == "none":
        assert (out[[1, 4, 7]] == 0).all()
    if reduction == "batchmean":
        # Ignored rows do not count in the mean: 7 rows do.
        full = case.call(case.fused, args, reduction="sum", ignore_index=-1)
        torch.testing.assert_close(out, full / 7)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
def test_empty_batch(case, reduction):
    args = case.inputs(0, 7)
    out = case.call(case.fused, args, reduction=reduction)
    assert out.shape == ((0,) if reduction == "none" else ())
    if reduction != "none":
        assert out.item() == 0.0
    grads = _grads(case, out, args)
    assert grads[0].shape == (0, 7)


@pytest.mark.parametrize("case", LABELLED, ids=[c.name for c in LABELLED])
def test_every_row_ignored_is_zero(case):
    args = case.inputs(5, 6, seed=8)
    args[-1] = torch.full_like(args[-1], -100)
    out = case.call(case.fused, args)
    assert out.item() == 0.0
    assert all((g == 0).all() for g in _grads(case, out, args))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_no_grad_and_detached_calls(case):
    args = case.inputs(6, 8, seed=9, requires_grad=False)
    out = case.call(case.fused, args)
    with torch.no_grad():
        out2 = case.call(case.fused, args)
    torch.testing.assert_close(out, out2)
    assert not out.requires_grad


@pytest.mark.parametrize("case", WITH_MODULE, ids=[c.name for c in WITH_MODULE])
def test_module_matches_functional(case):
    import fusedkd

    module = getattr(fusedkd, SPEC_OF[case.name].module)(**case.kwargs)
    args = case.inputs(6, 8, seed=10)
    torch.testing.assert_close(module(*args), case.call(case.fused, args))


def test_uskd_module_owns_its_linear_layer_and_trains_it():
    import fusedkd

    torch.manual_seed(0)
    feature, logits, y = torch.randn(8, 5), torch.randn(8, 10, requires_grad=True), torch.randint(0, 10, (8,))
    module = fusedkd.USKDLoss(5, 10)
    out = module(feature, logits, y)
    weak = module.fc(feature)
    torch.testing.assert_close(out, fusedkd.reference.uskd_loss(logits, weak, y), rtol=1e-5, atol=1e-6)
    out.backward()
    assert module.fc.weight.grad is not None and module.fc.weight.grad.abs().sum() > 0
    assert logits.grad is not None


def test_soft_labels():
    import fusedkd

    torch.manual_seed(1)
    s, t = torch.randn(6, 9, requires_grad=True), torch.randn(6, 9)
    a, b = torch.randint(0, 9, (6,)), torch.randint(0, 9, (6,))
    lam = 0.7
    soft = lam * torch.nn.functional.one_hot(a, 9).float() + (1 - lam) * torch.nn.functional.one_hot(b, 9).float()
    # NKD: the argmax of the label vector, as the reference does.
    torch.testing.assert_close(fusedkd.nkd_loss(s, t, soft), fusedkd.nkd_loss(s, t, soft.argmax(1)))
    torch.testing.assert_close(fusedkd.nkd_loss(s, t, soft), fusedkd.reference.nkd_loss(s, t, soft), rtol=1e-5,
                               atol=1e-6)
    # USKD: the top two labels, through the reference path.
    w = torch.randn(6, 9, requires_grad=True)
    torch.testing.assert_close(fusedkd.uskd_loss(s, w, soft), fusedkd.reference.uskd_loss(s, w, soft))
