"""fusedkd.topk_kd_loss: KD from a sparse teacher (top-k log-probabilities at given indices).

Against fusedkd.reference.topk_kd_loss (written as Megatron-LM's topk_kl_div / Model-Optimizer's
TopKLogitsKLLoss compute it) in float64 and per dtype, against the dense forward KL where K is the whole
vocabulary, and the op's checks. Tolerances: cases.TOL per input dtype (float64 1e-10 relative)."""

from __future__ import annotations

import pytest
import torch

import fusedkd
from fusedkd import reference

from cases import TOL

TAILS = ("ghost", "renormalize", "renormalize_both", "none")


def make(N=6, V=300, k=8, dtype=torch.float64, seed=0, scale=3.0, index_dtype=torch.int64, lead=None):
    """Student logits and a teacher's top-k log-probabilities (normalized over its full vocabulary, as a
    server returns them) with their indices."""
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(N, V, generator=g, dtype=torch.float64) * scale).to(dtype)
    t = torch.randn(N, V, generator=g, dtype=torch.float64) * scale
    lp, idx = torch.log_softmax(t, -1).topk(k, dim=-1)
    idx = idx.to(index_dtype)
    if lead is not None:
        s, lp, idx = s.reshape(*lead, V), lp.reshape(*lead, k), idx.reshape(*lead, k)
    return s.requires_grad_(), lp, idx


def value_and_grad(fn, s, *args, **kw):
    s = s.detach().requires_grad_()
    loss = fn(s, *args, **kw)
    (g,) = torch.autograd.grad(loss.sum(), s)
    return loss, g


@pytest.mark.parametrize("tail", TAILS)
@pytest.mark.parametrize("k", [1, 8, 64, 256])
@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_matches_the_reference_in_float64(tail, k, tau):
    s, lp, idx = make(k=k, seed=k)
    y = torch.tensor([3, -100, 5, 7, -100, 1])
    kw = dict(temperature=tau, tail=tail)
    lf, gf = value_and_grad(fusedkd.topk_kd_loss, s, lp, idx, y, **kw)
    lr, gr = value_and_grad(reference.topk_kd_loss, s, lp, idx, y, **kw)
    torch.testing.assert_close(lf, lr, **TOL[torch.float64])
    torch.testing.assert_close(gf, gr, **TOL[torch.float64])
    assert torch.all(gf[y == -100] == 0)


@pytest.mark.parametrize("tail", TAILS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
def test_matches_the_float64_reference_per_dtype(tail, dtype, index_dtype):
    s, lp, idx = make(N=5, V=1000, k=64, dtype=dtype, index_dtype=index_dtype, seed=1)
    lf, gf = value_and_grad(fusedkd.topk_kd_loss, s, lp, idx, tail=tail)
    lr, gr = value_and_grad(reference.topk_kd_loss, s.detach().double(), lp, idx, tail=tail)
    assert lf.dtype == torch.float32 and gf.dtype == dtype
    torch.testing.assert_close(lf.double(), lr, **TOL[dtype])
    torch.testing.assert_close(gf.double(), gr, **TOL[dtype])


@pytest.mark.parametrize("tail", ["ghost", "renormalize_both"])
def test_a_vocabulary_of_262144(tail):
    s, lp, idx = make(N=3, V=262144, k=256, dtype=torch.float32, seed=5)
    lf, gf = value_and_grad(fusedkd.topk_kd_loss, s, lp, idx, tail=tail)
    lr, gr = value_and_grad(reference.topk_kd_loss, s.detach().double(), lp, idx, tail=tail)
    torch.testing.assert_close(lf.double(), lr, **TOL[torch.float32])
    torch.testing.assert_close(gf.double(), gr, **TOL[torch.float32])


@pytest.mark.parametrize("tail", TAILS)
def test_token_shapes_reductions_and_num_items(tail):
    s, lp, idx = make(N=12, V=50, k=5, lead=(3, 4))
    y = torch.randint(0, 50, (3, 4), generator=torch.Generator().manual_seed(2))
    y[0, 1] = y[2, 3] = -100
    for reduction in ("batchmean", "sum", "none"):
        lf = fusedkd.topk_kd_loss(s, lp, idx, y, tail=tail, reduction=reduction)
        lr = reference.topk_kd_loss(s, lp, idx, y, tail=tail, reduction=reduction)
        assert lf.shape == lr.shape == ((3, 4) if reduction == "none" else ())
        torch.testing.assert_close(lf, lr, **TOL[torch.float64])
    lf = fusedkd.topk_kd_loss(s, lp, idx, y, tail=tail, num_items_in_batch=torch.tensor(40))
    torch.testing.assert_close(lf, reference.topk_kd_loss(s, lp, idx, y, tail=tail, reduction="sum") / 40)


@pytest.mark.parametrize("tail", ["ghost", "renormalize"])
def test_the_whole_vocabulary_as_k_is_forward_kl(tail):
    """K = V: no mass outside, so the ghost bucket (both sides clamped to 1e-8) adds 0 and renormalizing
    changes nothing: the dense forward KL (TRL's generalized_jsd_loss at beta = 0)."""
    g = torch.Generator().manual_seed(3)
    s = torch.randn(4, 40, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 40, generator=g, dtype=torch.float64) * 2
    lp, idx = torch.log_softmax(t, -1).topk(40, dim=-1)
    lf, gf = value_and_grad(fusedkd.topk_kd_loss, s, lp, idx, tail=tail)
    ld, gd = value_and_grad(fusedkd.forward_kl_loss, s, t)
    torch.testing.assert_close(lf, ld, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(gf, gd, rtol=1e-9, atol=1e-12)


def _peaked(N, V, k, missing, dtype):
    """A student whose top k (the teacher's K) hold all but `missing` of its mass; the teacher leaves 1e-2
    outside K (its own 1 − P_K is as accurate as its given values are: not what this checks)."""
    g = torch.Generator().manual_seed(4)
    base = torch.randn(N, V, generator=g, dtype=torch.float64)
    top = torch.zeros(N, V, dtype=torch.bool)
    top[:, :k] = True

    def with_mass_outside(m):  # logits with log-mass log(1 − m) on the first k columns, log(m) on the rest
        return torch.where(top, base, base + torch.log(torch.tensor(m)) - torch.log(torch.tensor(1 - m)))

    lp = torch.log_softmax(with_mass_outside(1e-2), -1)[:, :k].float()
    idx = torch.arange(k).expand(N, k).contiguous()
    noise = 0.1 * torch.randn(N, V, generator=g, dtype=torch.float64)
    s = torch.log_softmax(with_mass_outside(missing) + noise * top, -1).to(dtype)
    return s.requires_grad_(), lp, idx


@pytest.mark.parametrize("missing", [1e-7, 1e-6, 1e-3, 0.5, 1 - 1e-6])
def test_ghost_mass_near_zero_and_one(missing):
    """1 − Q_K as a sum over the complement (CPU) where it is small: in float32 the ghost term and the
    gradient off K keep their relative accuracy as the student's mass outside K vanishes, where
    1 − Σ_K q in float32 would lose it. Reference: float64 on the same rounded inputs."""
    s, lp, idx = _peaked(4, 2000, 16, missing, torch.float32)
    lf, gf = value_and_grad(fusedkd.topk_kd_loss, s, lp, idx)
    lr, gr = value_and_grad(reference.topk_kd_loss, s.detach().double(), lp.double(), idx)
    torch.testing.assert_close(lf.double(), lr, rtol=1e-5, atol=1e-6)
    # the gradient off K is q_j (1 − G/(1 − Q_K)): relative to its own size, not to the row's largest entry
    off = gr[:, 16:]
    rel = ((gf.double()[:, 16:] - off).abs() / off.abs().clamp_min(1e-30)).max()
    assert rel < 1e-4, rel


def test_softcap_caps_the_student_only():
    s, lp, idx = make(V=100, k=10, scale=20.0)
    lf, gf = value_and_grad(fusedkd.topk_kd_loss, s, lp, idx, softcap=5.0)
    lr, gr = value_and_grad(reference.topk_kd_loss, s, lp, idx, softcap=5.0)
    torch.testing.assert_close(lf, lr, **TOL[torch.float64])
    torch.testing.assert_close(gf, gr, **TOL[torch.float64])
    assert not torch.allclose(lf, fusedkd.topk_kd_loss(s, lp, idx))


def test_missing_teacher_entries_have_weight_zero():
    s, lp, idx = make(V=60, k=6)
    lp = lp.clone()
    lp[:, -2:] = float("-inf")  # as TRL marks missing entries
    for tail in TAILS:
        lf, gf = value_and_grad(fusedkd.topk_kd_loss, s, lp, idx, tail=tail)
        lr, gr = value_and_grad(reference.topk_kd_loss, s, lp, idx, tail=tail)
        assert torch.isfinite(lf) and torch.isfinite(gf).all()
        torch.testing.assert_close(lf, lr, **TOL[torch.float64])
        torch.testing.assert_close(gf, gr, **TOL[torch.float64])


def test_nan_in_means_nan_out():
    s, lp, idx = make(N=3, V=20, k=4)
    lp = lp.clone()
    lp[1, 2] = float("nan")
    lf = fusedkd.topk_kd_loss(s, lp, idx, reduction="none")
    assert torch.isnan(lf[1]) and torch.isfinite(lf[[0, 2]]).all()
    s2 = s.detach().clone()
    s2[2, 7] = float("nan")
    lf, gf = value_and_grad(fusedkd.topk_kd_loss, s2, lp, idx, reduction="none")
    assert torch.isnan(lf[2]) and torch.isnan(gf[2]).all() and torch.isfinite(gf[0]).all()


@pytest.mark.parametrize("tail", ["ghost", "renormalize", "renormalize_both"])
def test_a_divergence_is_never_negative(tail):
    # the teacher's top-k exactly where the student puts the same mass: the exact value is 0
    g = torch.Generator().manual_seed(6)
    t = torch.randn(8, 30, generator=g)
    lp, idx = torch.log_softmax(t, -1).topk(5, dim=-1)
    rows = fusedkd.topk_kd_loss(t, lp, idx, tail=tail, reduction="none")
    assert torch.all(rows >= 0)
    if tail != "renormalize":  # the student keeps its mass outside K there: not 0
        assert rows.max() < 1e-5


def test_empty_batch_and_every_row_ignored_give_zero():
    s, lp, idx = make(N=0, V=10, k=3)
    assert fusedkd.topk_kd_loss(s, lp, idx).item() == 0.0
    s, lp, idx = make(N=3, V=10, k=3)
    y = torch.full((3,), -100)
    loss, g = value_and_grad(fusedkd.topk_kd_loss, s, lp, idx, y)
    assert loss.item() == 0.0 and torch.all(g == 0)


def test_noncontiguous_inputs():
    s, lp, idx = make(N=5, V=64, k=8)
    padded = torch.nn.functional.pad(s.detach(), (0, 16)).requires_grad_()  # a padded vocabulary, sliced
    lp_t = lp.t().contiguous().t()  # column-major
    lf, gf = value_and_grad(fusedkd.topk_kd_loss, padded[:, :64], lp_t, idx.t().contiguous().t())
    lr, gr = value_and_grad(reference.topk_kd_loss, s, lp, idx)
    torch.testing.assert_close(lf, lr, **TOL[torch.float64])
    torch.testing.assert_close(gf, gr, **TOL[torch.float64])


def test_module():
    s, lp, idx = make(V=40, k=4)
    m = fusedkd.TopKKDLoss(temperature=2.0, tail="renormalize")
    torch.testing.assert_close(m(s, lp, idx), fusedkd.topk_kd_loss(s, lp, idx, temperature=2.0, tail="renormalize"))
    assert "tail='renormalize'" in repr(m)
    with pytest.raises(ValueError, match="tail must be one of"):
        fusedkd.TopKKDLoss(tail="tail")


# ----------------------------------------------------------------------------- checks


def test_bad_indices_raise_naming_the_row():
    s, lp, idx = make(N=4, V=20, k=3)
    bad = idx.clone()
    bad[2, 1] = 20
    with pytest.raises(RuntimeError, match=r"teacher_topk_indices: index 20 at row 2, entry 1 is out of range \[0, 20\)"):
        fusedkd.topk_kd_loss(s, lp, bad)
    dup = idx.clone()
    dup[1, 2] = dup[1, 0]
    with pytest.raises(RuntimeError, match="at row 1, entry 2 appears twice in its row"):
        fusedkd.topk_kd_loss(s, lp, dup)
    # an ignored row's indices are not read (padding tokens may hold anything)
    y = torch.tensor([0, -100, 0, 0])
    fusedkd.topk_kd_loss(s, lp, dup, y)


@pytest.mark.parametrize("call, message", [
    (lambda s, lp, idx: fusedkd.topk_kd_loss(s, lp[:3], idx[:3]), "teacher_topk_logprobs has shape"),
    (lambda s, lp, idx: fusedkd.topk_kd_loss(s, lp, idx[:, :2]), "teacher_topk_indices has shape"),
    (lambda s, lp, idx: fusedkd.topk_kd_loss(s, lp, idx.float()), "teacher_topk_indices must be int64 or int32"),
    (lambda s, lp, idx: fusedkd.topk_kd_loss(s, lp, idx, tail="tails"), "tail must be one of"),
    (lambda s, lp, idx: fusedkd.topk_kd_loss(s, lp, idx, temperature=0.0), "temperature"),
    (lambda s, lp, idx: fusedkd.topk_kd_loss(s, lp, idx, softcap=-1.0), "softcap"),
    (lambda s, lp, idx: fusedkd.topk_kd_loss(s, lp, idx, torch.zeros(5, dtype=torch.long)), "labels must have"),
    (lambda s, lp, idx: fusedkd.topk_kd_loss(s[:, :2], lp, idx), "k = 3 entries per row but the student has only V = 2"),
    (lambda s, lp, idx: fusedkd.topk_kd_loss(s, lp, idx, reduction="mean"), "reduction"),
])
def test_bad_arguments_name_the_argument(call, message):
    s, lp, idx = make(N=4, V=20, k=3)
    with pytest.raises((ValueError, TypeError, RuntimeError), match=message):
        call(s, lp, idx)


def test_gradcheck_opcheck_and_compile():
    s, lp, idx = make(N=3, V=12, k=4)
    y = torch.tensor([1, -100, 2])
    for tail in TAILS:
        assert torch.autograd.gradcheck(lambda x: fusedkd.topk_kd_loss(x, lp, idx, y, tail=tail, temperature=2.0), (s,))
    args = (s.detach().float(), lp.float(), idx, y, 1.0, 0, 0.0, "batchmean", -100, True)
    torch.library.opcheck(fusedkd.ops.topk_kd.default, args)
    compiled = torch.compile(lambda a, b, c: fusedkd.topk_kd_loss(a, b, c, tail="ghost"), fullgraph=True)
    sf = s.detach().float().requires_grad_()
    out = compiled(sf, lp, idx)
    out.backward()
    torch.testing.assert_close(out, fusedkd.topk_kd_loss(sf.detach(), lp, idx))


@pytest.mark.skipif(not (torch.cuda.is_available() and fusedkd.HAS_CUDA_KERNELS),
                    reason="no CUDA device (or a build without the CUDA kernels): the GPU path is checked by the "
                           "emulated suite (tests/cpp/test_topk_cuda.cu)")
@pytest.mark.parametrize("tail", TAILS)
def test_cuda_matches_the_cpu(tail):
    s, lp, idx = make(N=64, V=32000, k=64, dtype=torch.bfloat16, index_dtype=torch.int32)
    y = torch.randint(0, 32000, (64,))
    y[::7] = -100
    lc, gc = value_and_grad(fusedkd.topk_kd_loss, s, lp, idx, y, tail=tail)
    lg, gg = value_and_grad(fusedkd.topk_kd_loss, s.detach().cuda(), lp.cuda(), idx.cuda(), y.cuda(), tail=tail)
    torch.testing.assert_close(lg.cpu(), lc, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gg.cpu().float(), gc.float(), rtol=1.6e-2, atol=1e-6)
