"""Issue #15's wrong numbers through the torch ops: NaN/inf rows, never-negative losses, USKD with a
confident weak head, gradient precision and the temperature range (docs/math.md, "Non-finite
inputs, impossible values, precision and temperatures")."""

from __future__ import annotations

import math

import pytest
import torch

import fusedkd
from cases import CASE_IDS, CASES, WITH_TEMPERATURE

DTYPES = [torch.float32, torch.float64, torch.bfloat16]


def _run(case, args):
    loss = case.call(case.fused, args, reduction="none")
    diff = [a for a in args[: case.n_diff]]
    grads = torch.autograd.grad(loss.sum(), diff)
    return loss.detach(), grads


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("C", [5, 13])
@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("where", ["student", "second"])
def test_nan_or_inf_makes_the_row_nan(case, dtype, C, value, where):
    # one row at a time for USKD: a student NaN reaches every row through the batch mean of p_s,y²
    if where == "second" and not case.has_teacher:
        pytest.skip("a teacher-free loss has no second logits input")
    args = case.inputs(3, C, dtype=dtype, requires_grad=False)
    k = 0 if where == "student" else 1
    x = args[k].detach().clone()
    x[1, C - 1] = value
    args[k] = x
    if case.name.startswith("uskd") and where == "student":
        args = [a[1:2] for a in args]
    args = [a.requires_grad_(True) if i < case.n_diff else a for i, a in enumerate(args)]
    loss, grads = _run(case, args)
    if case.kwargs.get("softcap") and value == math.inf:
        # a softcap maps +inf to c (c·tanh(x/c), as PyTorch): a finite row (docs/math_token.md)
        assert torch.isfinite(loss).all() and (loss >= 0).all(), loss
        for g in grads:
            assert torch.isfinite(g).all()
        return
    row = 0 if loss.numel() == 1 else 1
    assert torch.isnan(loss[row]), loss
    for g in grads:
        assert torch.isnan(g[row]).all(), g[row]
    if loss.numel() > 1:  # the other rows are unaffected
        assert torch.isfinite(loss[[0, 2]]).all()
        for g in grads:
            assert torch.isfinite(g[[0, 2]]).all()


@pytest.mark.parametrize("case", [c for c in CASES if not c.name.startswith("uskd")], ids=lambda c: c.name)
@pytest.mark.parametrize("C", [5, 13, 1000])
def test_equal_rows_give_no_negative_loss(case, C):
    s = torch.randn(64, C, generator=torch.Generator().manual_seed(C), dtype=torch.float64) * 4
    s = s.float()
    args = [s] + ([s.clone()] if case.has_teacher else []) + ([torch.randint(0, C, (64,))] if case.has_target else [])
    loss = case.call(case.fused, args, reduction="none")
    assert (loss >= 0).all(), loss.min()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_huge_logits_never_give_a_negative_loss(case):
    g = torch.Generator().manual_seed(1)
    args = case.inputs(16, 13, requires_grad=False)
    for k in (0, 1) if case.has_teacher else (0,):
        sign = torch.randint(0, 2, args[k].shape, generator=g) * 2 - 1
        args[k] = sign * 3e38 * (0.5 + 0.5 * torch.rand(args[k].shape, generator=g))
    loss = case.call(case.fused, args, reduction="none")
    assert not (loss < 0).any(), loss


def test_uskd_confident_weak_head_repro():
    s = torch.tensor([[0.0, -1.0, -2.0, 2.0]])
    w = torch.tensor([[-1.0, 30.0, 16.0, 0.0]])
    y = torch.tensor([1])
    want = fusedkd.uskd_loss(s.double(), w.double(), y).item()
    assert want == pytest.approx(3.362697, abs=1e-6)
    assert fusedkd.uskd_loss(s, w, y).item() == pytest.approx(want, abs=2e-6)


@pytest.mark.parametrize("scale", [10.0, 30.0])
def test_uskd_weak_logits_scaled_match_float64(scale):
    g = torch.Generator().manual_seed(int(scale))
    N, C = 32, 13
    s = torch.randn(N, C, generator=g) * 2
    w = torch.randn(N, C, generator=g) * scale
    y = torch.randint(0, C, (N,), generator=g)
    others = w.scatter(1, y[:, None], -math.inf).amax(1)
    w[torch.arange(N), y] = torch.round(others + 9 + torch.arange(N) % 10)
    out = fusedkd.uskd_loss(s, w, y, reduction="none")
    ref = fusedkd.uskd_loss(s.double(), w.double(), y, reduction="none")
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", WITH_TEMPERATURE, ids=[c.name for c in WITH_TEMPERATURE])
def test_temperature_range_depends_on_the_dtype(case):
    args = case.inputs(4, 6, requires_grad=False)
    for tau in (1e4, 1e-45, 1e20):
        with pytest.raises((RuntimeError, ValueError), match="temperature"):
            case.call(case.fused, args, temperature=tau)
    args64 = [a.double() if a.is_floating_point() else a for a in args]
    assert torch.isfinite(case.call(case.fused, args64, temperature=1e4))
    with pytest.raises((RuntimeError, ValueError), match="temperature"):
        case.call(case.fused, args64, temperature=1e20)
