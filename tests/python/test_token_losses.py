"""The token-level (LLM) losses — forward / reverse KL, generalized JSD (TRL's), TVD — and what every
loss gains with them: [..., V] token logits, ignored tokens, ``num_items_in_batch``, a softcap, a padded
teacher vocabulary read as a strided view. The generic grid (dtypes, reductions, gradcheck, opcheck,
torch.compile, non-finite inputs) runs these losses through ``cases.py``; this file holds what is
particular to them.

Tolerances, against the float64 reference on the same rounded inputs: float64 1e-10 relative; float32
1e-5 relative / 1e-6 absolute; float16 2e-3 and bfloat16 1.6e-2 relative (the rounding of the written
gradient; ``cases.TOL``).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import fusedkd
from cases import TOL
from fusedkd import reference

TOKEN_FUNCTIONS = {
    "forward_kl": (fusedkd.forward_kl_loss, reference.forward_kl_loss),
    "reverse_kl": (fusedkd.reverse_kl_loss, reference.reverse_kl_loss),
    "jsd": (fusedkd.jsd_loss, reference.jsd_loss),
    "tvd": (fusedkd.tvd_loss, reference.tvd_loss),
}
ALL_LOSSES = {  # every loss: a call on (student, teacher, labels, **kw)
    **{name: fns[0] for name, fns in TOKEN_FUNCTIONS.items()},
    "kd": lambda s, t, y, **kw: fusedkd.kd_loss(s, t, **kw),
    "dkd": fusedkd.dkd_loss,
    "nkd": fusedkd.nkd_loss,
    "rld": fusedkd.rld_loss,
    "uskd": fusedkd.uskd_loss,
}


def _tokens(B=3, T=5, V=41, dtype=torch.float64, seed=0, scale=3.0, ignored=True):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(B, T, V, generator=g, dtype=torch.float64) * scale).to(dtype).requires_grad_(True)
    t = (torch.randn(B, T, V, generator=g, dtype=torch.float64) * scale).to(dtype)
    y = torch.randint(0, V, (B, T), generator=g)
    if ignored:
        y[0, :2] = -100  # a padded prompt
        y[-1, -1] = -100
    return s, t, y


def _f64(x):
    return x.detach().double().requires_grad_(x.requires_grad)


def _loss_and_grad(fn, s, *args, **kw):
    out = fn(s, *args, **kw)
    (g,) = torch.autograd.grad(out.sum(), s)
    return out, g


# --- TRL's generalized_jsd_loss: β and τ grid, token-shaped, ignored tokens -------------------------------

@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_jsd_grid_matches_the_float64_reference(beta, temperature, dtype):
    s, t, y = _tokens(dtype=dtype, seed=int(10 * beta + 100 * temperature))
    out, g = _loss_and_grad(fusedkd.jsd_loss, s, t, y, beta=beta, temperature=temperature)
    ref, gr = _loss_and_grad(reference.jsd_loss, _f64(s), t.double(), y, beta=beta, temperature=temperature)
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])
    torch.testing.assert_close(g.double(), gr, **TOL[dtype])
    assert g.dtype == dtype and g.shape == s.shape


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_jsd_ends_are_the_kl_ops(beta):
    # β = 0 runs forward_kl, β = 1 reverse_kl (TRL's branches), bit for bit; the named functions agree.
    s, t, y = _tokens(dtype=torch.float32)
    named = fusedkd.forward_kl_loss if beta == 0 else fusedkd.reverse_kl_loss
    assert torch.equal(fusedkd.jsd_loss(s, t, y, beta=beta), named(s, t, y))
    # The three-pass JSD op close to the ends tends to 0 (TRL's formula), not to the KL: the discontinuity
    # is the reference's.
    near = fusedkd.jsd_loss(s, t, y, beta=1e-6 if beta == 0 else 1 - 1e-6)
    assert near.item() < 1e-4 * named(s, t, y).item()


def test_jsd_swaps_with_one_minus_beta():
    # m(β) with (p, q) = m(1 − β) with (q, p): JSD_β(s, t) = JSD_{1−β}(t, s).
    s, t, y = _tokens()
    a = fusedkd.jsd_loss(s, t, y, beta=0.3, reduction="none")
    b = fusedkd.jsd_loss(t, s.detach(), y, beta=0.7, reduction="none")
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_token_shape_is_the_flattened_rows():
    # [B, T, V] with [B, T] labels equals the [B·T, V] call, "none" comes back as [B, T].
    s, t, y = _tokens(dtype=torch.float32)
    for fn, _ in TOKEN_FUNCTIONS.values():
        out = fn(s, t, y, reduction="none")
        assert out.shape == (3, 5)
        flat = fn(s.reshape(15, -1), t.reshape(15, -1), y.reshape(15), reduction="none")
        torch.testing.assert_close(out.reshape(15), flat, rtol=0, atol=0)
        assert (out[y == -100] == 0).all()
        torch.testing.assert_close(fn(s, t, y), flat.sum() / (y != -100).sum())


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_every_loss_takes_token_logits(name):
    # The classification losses on [B, T, C] with [B, T] labels: the same numbers as the flattened call.
    fn = ALL_LOSSES[name]
    s, t, y = _tokens(V=11, dtype=torch.float32)
    for reduction in ("batchmean", "sum", "none"):
        out = fn(s, t, y, reduction=reduction)
        flat = fn(s.reshape(15, 11), t.reshape(15, 11), y.reshape(15), reduction=reduction)
        torch.testing.assert_close(out.reshape(flat.shape), flat, rtol=0, atol=0)
        assert out.shape == ((3, 5) if reduction == "none" else ())
    (g,) = torch.autograd.grad(fn(s, t, y), s)
    (gf,) = torch.autograd.grad(fn(s.reshape(15, 11), t.reshape(15, 11), y.reshape(15)), s)
    torch.testing.assert_close(g, gf, rtol=0, atol=0)


def test_labels_must_have_the_leading_shape():
    s, t, y = _tokens()
    with pytest.raises(ValueError, match=r"labels must have the logits' leading shape \[3, 5\], got \[15\]"):
        fusedkd.jsd_loss(s, t, y.reshape(15))


# --- num_items_in_batch ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_num_items_in_batch_divides_the_sum(name):
    fn = ALL_LOSSES[name]
    s, t, y = _tokens(V=11, dtype=torch.float32)
    total, g_sum = _loss_and_grad(fn, s, t, y, reduction="sum")
    for n in (37, torch.tensor(37), torch.tensor(37.0)):
        out, g = _loss_and_grad(fn, s, t, y, num_items_in_batch=n)
        torch.testing.assert_close(out, total / 37)
        torch.testing.assert_close(g, g_sum / 37)


def test_num_items_in_batch_is_checked():
    s, t, y = _tokens()
    with pytest.raises(ValueError, match=r"num_items_in_batch is the divisor of reduction='batchmean'"):
        fusedkd.jsd_loss(s, t, y, reduction="sum", num_items_in_batch=4)
    for bad in (0, -3):
        with pytest.raises(ValueError, match=r"num_items_in_batch must be positive"):
            fusedkd.jsd_loss(s, t, y, num_items_in_batch=bad)
    with pytest.raises(ValueError, match=r"num_items_in_batch must be an int or a 0-dim real tensor"):
        fusedkd.jsd_loss(s, t, y, num_items_in_batch=torch.tensor([4]))
    with pytest.raises(TypeError, match=r"num_items_in_batch"):
        fusedkd.jsd_loss(s, t, y, num_items_in_batch="4")


def test_reference_num_items_in_batch():
    s, t, y = _tokens()
    torch.testing.assert_close(reference.jsd_loss(s, t, y, num_items_in_batch=7),
                               reference.jsd_loss(s, t, y, reduction="sum") / 7)


# --- softcap ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(TOKEN_FUNCTIONS))
@pytest.mark.parametrize("cap", [1.0, 4.0, 30.0])
def test_softcap_is_tanh_on_both_logits_first(name, cap):
    # softcap=c equals the uncapped loss on c·tanh(x/c) (value), and its gradient is chained through the
    # cap: ∂/∂s = cap'(s) ∂/∂s̃ with cap'(s) = 1 − tanh²(s/c).
    fn, _ = TOKEN_FUNCTIONS[name]
    s, t, y = _tokens(scale=10.0)
    out, g = _loss_and_grad(fn, s, t, y, softcap=cap)
    sc = (cap * torch.tanh(s / cap)).detach().requires_grad_(True)
    plain, g_plain = _loss_and_grad(fn, sc, cap * torch.tanh(t / cap), y)
    torch.testing.assert_close(out, plain, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g, g_plain * (1 - torch.tanh(s.detach() / cap) ** 2), rtol=1e-10, atol=1e-14)


def test_softcap_of_infinite_logits_is_the_cap():
    # ±inf logits are capped to ±c: a finite loss, where the uncapped loss would be NaN (+inf).
    s, t, y = _tokens(ignored=False)
    s = s.detach().clone()
    s[0, 0, 3] = math.inf
    t = t.clone()
    t[0, 0, 5] = -math.inf
    out = fusedkd.jsd_loss(s, t, y, softcap=5.0, reduction="none")
    assert torch.isfinite(out).all()
    capped = fusedkd.jsd_loss(5.0 * torch.tanh(s / 5.0), 5.0 * torch.tanh(t / 5.0), y, reduction="none")
    assert 5.0 * torch.tanh(s / 5.0)[0, 0, 3] == 5.0
    torch.testing.assert_close(out, capped, rtol=1e-12, atol=1e-14)
    assert torch.isnan(fusedkd.jsd_loss(s, t, y, reduction="none")[0, 0])


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_softcap_must_be_positive_and_finite(bad):
    s, t, y = _tokens()
    with pytest.raises(ValueError, match=r"softcap must be a positive finite number or None"):
        fusedkd.jsd_loss(s, t, y, softcap=bad)
    with pytest.raises(ValueError, match=r"softcap must be a positive finite number or None"):
        fusedkd.JSDLoss(softcap=bad)


# --- the padded teacher vocabulary ----------------------------------------------------------------------

class _OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", list(TOKEN_FUNCTIONS))
def test_padded_teacher_vocabulary_is_read_in_place(name):
    # A teacher with 7 more columns, passed as teacher[..., :V]: the same loss as a contiguous copy, and no
    # copy is made on the way to the op.
    fn, _ = TOKEN_FUNCTIONS[name]
    s, t, y = _tokens(dtype=torch.float32)
    wide = torch.randn(3, 5, 48)
    wide[..., :41] = t
    view = wide[..., :41]
    assert not view.is_contiguous()
    with _OpLog() as log:
        out = fn(s, view, y)
    assert not [op for op in log.ops if "copy" in op or "clone" in op or "contiguous" in op], log.ops
    assert any(op.startswith("fusedkd.") for op in log.ops), log.ops
    torch.testing.assert_close(out, fn(s, t, y), rtol=0, atol=0)


def test_vocabulary_mismatch_is_a_clear_error():
    s, t, y = _tokens()
    wide = torch.randn(3, 5, 48, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"teacher_logits has shape \[3, 5, 48\] but student_logits has shape "
                                         r"\[3, 5, 41\]; .* pass teacher_logits\[\.\.\., :41\]"):
        fusedkd.jsd_loss(s, wide, y)
    with pytest.raises(ValueError, match=r"teacher_logits has shape \[3, 5, 30\] but student_logits"):
        fusedkd.forward_kl_loss(s, wide[..., :30], y)  # a smaller teacher: no slice to suggest
    with pytest.raises(ValueError, match=r"teacher_logits has shape \[15, 41\] but student_logits has shape"):
        fusedkd.tvd_loss(s, t.reshape(15, 41), y)


# --- the loss itself -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(TOKEN_FUNCTIONS))
def test_never_negative_and_zero_on_equal_logits(name):
    fn, _ = TOKEN_FUNCTIONS[name]
    s, _, y = _tokens(dtype=torch.float32, scale=20.0)
    out = fn(s, s.detach() + 5.0, y, reduction="none")  # the same distributions (a shift)
    assert (out >= 0).all()
    assert out.max().item() < 1e-5
    near = fn(s, s.detach() + 1e-4 * torch.randn_like(s), y, reduction="none")
    assert (near >= 0).all()


def test_tvd_is_within_zero_and_one():
    s, t, y = _tokens(scale=30.0)
    out = fusedkd.tvd_loss(s, t, y, reduction="none")
    assert (out >= 0).all() and (out <= 1 + 1e-12).all()
    assert out.max() > 0.9  # nearly disjoint one-hots


def test_tvd_gradient_at_ties_is_zero():
    # p_j = q_j exactly: sgn 0 = 0 (docs/math_token.md; Liger takes −½ there).
    s = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0.0, 0.0, 1.0, -1.0]], dtype=torch.float64)
    (g,) = torch.autograd.grad(fusedkd.tvd_loss(s, t), s)
    (gr,) = torch.autograd.grad(reference.tvd_loss(s, t), s)
    torch.testing.assert_close(g, gr, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("V", [32000, 262144])
@pytest.mark.parametrize("name", list(TOKEN_FUNCTIONS))
def test_large_vocabularies(name, V):
    fn, ref_fn = TOKEN_FUNCTIONS[name]
    g = torch.Generator().manual_seed(V)
    s = (torch.randn(3, V, generator=g) * 4).requires_grad_(True)
    t = torch.randn(3, V, generator=g) * 4
    # fp32 against fp64. Gradient elements are O(1/V) and cancel (q_j(log q_j − log p_j − ℓ)), so each is
    # measured in units of its scale q_j + p_j: at most 1e-4 of it (measured ≤ 3.3e-5, reverse KL with the
    # cap), and never further from fp64 than the fp32 PyTorch reference (measured 2–30× further).
    for cap in (None, 30.0):
        out, gs = _loss_and_grad(fn, s, t, softcap=cap)
        ref, gr = _loss_and_grad(ref_fn, _f64(s), t.double(), softcap=cap)
        ref32, g32 = _loss_and_grad(ref_fn, s.detach().clone().requires_grad_(True), t, softcap=cap)
        torch.testing.assert_close(out.double(), ref, rtol=2e-6, atol=0)
        scale = torch.softmax(s.detach().double(), -1) + torch.softmax(t.double(), -1)
        err, err32 = ((gs.double() - gr).abs() / scale).max(), ((g32.double() - gr).abs() / scale).max()
        assert err <= 1e-4 and err <= max(err32, 1e-6), (err, err32)


@pytest.mark.parametrize("name", list(TOKEN_FUNCTIONS))
def test_gradcheck_token_shaped_with_softcap_and_num_items(name):
    fn, _ = TOKEN_FUNCTIONS[name]
    s, t, y = _tokens(B=2, T=3, V=7)
    kw = dict(softcap=2.5, temperature=0.7, num_items_in_batch=torch.tensor(4.0))
    if name == "jsd":
        kw["beta"] = 0.3
    assert torch.autograd.gradcheck(lambda x: fn(x, t, y, **kw), (s,))


@pytest.mark.parametrize("name", list(TOKEN_FUNCTIONS))
def test_compiles_with_fullgraph(name):
    fn, _ = TOKEN_FUNCTIONS[name]
    s, t, y = _tokens(dtype=torch.float32)

    def step(s, t, y, n):
        return fn(s, t[..., :41], y, softcap=10.0, num_items_in_batch=n)

    wide = torch.nn.functional.pad(t, (0, 3))
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    n = torch.tensor(9)
    out, g = _loss_and_grad(compiled, s, wide, y, n)
    eager, ge = _loss_and_grad(step, s, wide, y, n)
    torch.testing.assert_close(out, eager, rtol=0, atol=0)
    torch.testing.assert_close(g, ge, rtol=0, atol=0)


def test_all_tokens_ignored_is_zero():
    s, t, y = _tokens()
    y = torch.full_like(y, -100)
    for fn, _ in TOKEN_FUNCTIONS.values():
        out, g = _loss_and_grad(fn, s, t, y)
        assert out.item() == 0.0 and (g == 0).all()
        assert fn(s, t, y, num_items_in_batch=5).item() == 0.0


def test_beta_must_be_in_the_unit_interval():
    s, t, y = _tokens()
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match=r"beta"):
            fusedkd.jsd_loss(s, t, y, beta=bad)
        with pytest.raises(ValueError, match=r"beta"):
            fusedkd.JSDLoss(beta=bad)


# --- modules ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("module, fn, kw", [
    (fusedkd.ForwardKLLoss, fusedkd.forward_kl_loss, dict(temperature=2.0, temperature_squared=True)),
    (fusedkd.ReverseKLLoss, fusedkd.reverse_kl_loss, dict(softcap=3.0)),
    (fusedkd.JSDLoss, fusedkd.jsd_loss, dict(beta=0.9, temperature=0.5)),
    (fusedkd.TVDLoss, fusedkd.tvd_loss, dict(softcap=4.0, reduction="sum")),
])
def test_modules_are_the_functions(module, fn, kw):
    s, t, y = _tokens()
    m = module(**kw)
    assert torch.equal(m(s, t, y), fn(s, t, y, **kw))
    if kw.get("reduction", "batchmean") == "batchmean":
        assert torch.equal(m(s, t, y, num_items_in_batch=6), fn(s, t, y, **kw, num_items_in_batch=6))
    for name, value in kw.items():
        assert f"{name}={value!r}" in repr(m)
    assert "softcap=None" in repr(module()) or "softcap" in kw


# ----------------------------------------------------------------------------- the anchor itself, where installed


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_jsd_matches_trl_generalized_jsd_loss_when_installed(beta, tau):
    """TRL's own GKDTrainer.generalized_jsd_loss (trl is not a dependency: skipped without it), values and
    gradients in float64, with ignored tokens (its "batchmean" with labels divides by the counted tokens,
    as fusedkd's)."""
    gkd = pytest.importorskip("trl.experimental.gkd", reason="TRL is not installed (optional anchor)")
    g = torch.Generator().manual_seed(int(beta * 10 + tau * 100))
    s = torch.randn(48, 300, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(48, 300, generator=g, dtype=torch.float64) * 2
    y = torch.randint(0, 300, (48,), generator=g)
    y[::5] = -100
    ours = fusedkd.jsd_loss(s, t, y, beta=beta, temperature=tau)
    theirs = gkd.GKDTrainer.generalized_jsd_loss(s, t, labels=y, beta=beta, temperature=tau)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)
    (g_ours,) = torch.autograd.grad(ours, s)
    (g_theirs,) = torch.autograd.grad(theirs, s)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-10, atol=1e-14)
