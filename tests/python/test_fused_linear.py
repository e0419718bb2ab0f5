"""fusedkd.fused_linear_distillation_loss / FusedLinearDistillationLoss: the heads fused with the loss.

Against the unfused composition (the head GEMMs, then the fusedkd losses, then autograd) and the same
composition of the pure-PyTorch references, for the loss and the gradients of the input, the weight and
the bias. Tolerances:
  * float64: 1e-10 relative (the same math; the chunks only change the summation order);
  * float32 / bfloat16 / float16 against the same-dtype composition: cases.TOL of the dtype (both run the
    same GEMMs and ops; the weight gradient differs by its float32 accumulation across chunks);
  * bfloat16 / float16 against the float64 reference on the rounded inputs: the logits themselves are
    rounded by the half-precision GEMM, so 3e-2 relative (values) and 3e-2 of the largest entry (gradients).
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as torch_F

import fusedkd
from fusedkd import fused_linear, reference

from cases import TOL

LOSSES = tuple(fused_linear.FUSED_LINEAR_LOSSES)
TEACHER_FREE = ("tfnkd",)
KWARGS = {"jsd": dict(beta=0.3, temperature=1.5), "forward_kl": dict(temperature=2.0), "kd": dict(temperature=2.0),
          "topk_kd": dict(tail="ghost"), "dkd": dict(temperature=2.0)}


def make(N=48, H=12, Ht=20, V=40, dtype=torch.float64, seed=0, lead=None, bias=True, k=6):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    d = dict(h=r(N, H), W=r(V, H) * 0.5, b=r(V) if bias else None, g=r(N, Ht), Wt=r(V, Ht) * 0.5,
             bt=r(V) if bias else None, y=torch.randint(0, V, (N,), generator=g))
    d["y"][::5] = -100
    t = torch_F.linear(d["g"], d["Wt"], d["bt"])
    d["lp"], d["idx"] = torch.log_softmax(t, -1).topk(k, dim=-1)
    for key in ("h", "W", "b", "g", "Wt", "bt"):
        if d[key] is not None:
            d[key] = d[key].to(dtype)
    if lead is not None:
        for key in ("h", "g"):
            d[key] = d[key].reshape(*lead, d[key].shape[-1])
        for key in ("lp", "idx"):
            d[key] = d[key].reshape(*lead, k)
        d["y"] = d["y"].reshape(lead)
    return d


def fused(loss, d, **kw):
    teacher = (None, None, None) if loss in TEACHER_FREE or loss == "topk_kd" else (d["g"], d["Wt"], d["bt"])
    extra = dict(teacher_topk_logprobs=d["lp"], teacher_topk_indices=d["idx"]) if loss == "topk_kd" else {}
    return fusedkd.fused_linear_distillation_loss(d["h"], d["W"], teacher[0], teacher[1], d["y"], d["b"], teacher[2],
                                                  loss=loss, **extra, **kw)


def composed(lib, loss, d, weight_hard_loss=0.5, weight_soft_loss=0.5, num_items_in_batch=None, **kw):
    """The unfused step: logits materialised, the loss of `lib` (fusedkd or fusedkd.reference), autograd."""
    V = d["W"].shape[0]
    s = torch_F.linear(d["h"], d["W"], d["b"]).reshape(-1, V)
    t = torch_F.linear(d["g"], d["Wt"], d["bt"]).reshape(-1, V)
    y = d["y"].reshape(-1)
    m = y != -100
    D = num_items_in_batch if num_items_in_batch is not None else max(int(m.sum()), 1)
    hard = lib.cross_entropy_loss(s, y, reduction="sum")
    if loss == "kd":
        soft = lib.kd_loss(s[m], t[m], reduction="sum", **kw)
    elif loss == "tfnkd":
        soft = lib.tfnkd_loss(s, y, reduction="sum")
    elif loss == "topk_kd":
        k = d["lp"].shape[-1]
        soft = lib.topk_kd_loss(s, d["lp"].reshape(-1, k), d["idx"].reshape(-1, k), y, reduction="sum", **kw)
    else:
        soft = getattr(lib, f"{loss}_loss")(s, t, y, reduction="sum", **kw)
    return (weight_hard_loss * hard + weight_soft_loss * soft) / D


def with_grads(fn, d):
    d = dict(d)
    leaves = [d[k] for k in ("h", "W", "b") if d[k] is not None]
    for key in ("h", "W", "b"):
        if d[key] is not None:
            d[key] = d[key].detach().requires_grad_()
    loss = fn(d)
    grads = torch.autograd.grad(loss, [d[k] for k in ("h", "W", "b") if d[k] is not None])
    assert len(grads) == len(leaves)
    return loss.detach(), grads


def assert_same(a, b, tol):
    (la, ga), (lb, gb) = a, b
    torch.testing.assert_close(la, lb.to(la.dtype), **tol)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y.to(x.dtype), **tol)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("chunk", [1, 7, 16, 100])  # 16: an exact multiple of N = 48; 100 > N
def test_matches_the_unfused_composition_in_float64(loss, chunk):
    d = make(seed=LOSSES.index(loss))
    kw = KWARGS.get(loss, {})
    got = with_grads(lambda e: fused(loss, e, chunk_size=chunk, weight_hard_loss=0.3, weight_soft_loss=0.7, **kw), d)
    want = with_grads(lambda e: composed(fusedkd, loss, e, 0.3, 0.7, **kw), d)
    ref = with_grads(lambda e: composed(reference, loss, e, 0.3, 0.7, **kw), d)
    assert_same(got, want, TOL[torch.float64])
    assert_same(got, ref, TOL[torch.float64])


@pytest.mark.parametrize("loss", ["jsd", "dkd", "topk_kd", "kd", "tfnkd"])
def test_batch_time_hidden_inputs(loss):
    d = make(lead=(4, 12), seed=3)
    kw = KWARGS.get(loss, {})
    got = with_grads(lambda e: fused(loss, e, chunk_size=5, **kw), d)
    want = with_grads(lambda e: composed(fusedkd, loss, e, **kw), d)
    assert got[1][0].shape == (4, 12, 12)
    assert_same(got, want, TOL[torch.float64])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("loss", ["jsd", "reverse_kl", "kd", "topk_kd", "dkd"])
def test_per_dtype(dtype, loss):
    d = make(N=40, H=32, Ht=24, V=300, dtype=dtype, seed=5)
    kw = KWARGS.get(loss, {})
    got = with_grads(lambda e: fused(loss, e, chunk_size=16, **kw), d)
    want = with_grads(lambda e: composed(fusedkd, loss, e, **kw), d)
    assert got[0].dtype == torch.float32 and got[1][1].dtype == dtype
    assert_same(got, want, TOL[dtype])
    if dtype != torch.float32:  # against the float64 reference on the rounded inputs
        d64 = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in d.items()}
        ref = with_grads(lambda e: composed(reference, loss, e, **kw), d64)
        torch.testing.assert_close(got[0].double(), ref[0], rtol=3e-2, atol=1e-3)
        for x, y in zip(got[1], ref[1]):
            torch.testing.assert_close(x.double(), y, rtol=0, atol=3e-2 * float(y.abs().max()))


@pytest.mark.parametrize("weights", [(0.0, 1.0), (1.0, 0.0), (0.25, 2.0)])
def test_hard_and_soft_weights(weights):
    d = make(seed=7)
    got = with_grads(lambda e: fused("jsd", e, chunk_size=10, weight_hard_loss=weights[0], weight_soft_loss=weights[1]), d)
    want = with_grads(lambda e: composed(fusedkd, "jsd", e, *weights), d)
    assert_same(got, want, TOL[torch.float64])


def test_both_weights_zero_give_zero():
    d = make(seed=8)
    loss, grads = with_grads(lambda e: fused("jsd", e, weight_hard_loss=0.0, weight_soft_loss=0.0), d)
    assert loss.item() == 0.0 and all(torch.all(g == 0) for g in grads)


def test_every_token_ignored_and_empty_batch():
    d = make(seed=9)
    d["y"][:] = -100
    loss, grads = with_grads(lambda e: fused("dkd", e, chunk_size=7), d)
    assert loss.item() == 0.0 and all(torch.all(g == 0) for g in grads)
    e = make(N=0, seed=9)
    loss, grads = with_grads(lambda x: fused("jsd", x), e)
    assert loss.item() == 0.0 and grads[0].shape == (0, 12) and torch.all(grads[1] == 0)


@pytest.mark.parametrize("num_items", [17, "tensor"])
def test_num_items_in_batch(num_items):
    d = make(seed=10)
    n = torch.tensor(17) if num_items == "tensor" else num_items
    got = with_grads(lambda e: fused("forward_kl", e, chunk_size=9, num_items_in_batch=n), d)
    want = with_grads(lambda e: composed(fusedkd, "forward_kl", e, num_items_in_batch=17), d)
    assert_same(got, want, TOL[torch.float64])


def test_reduction_sum():
    d = make(seed=11)
    D = int((d["y"] != -100).sum())
    got = with_grads(lambda e: fused("tvd", e, chunk_size=9, reduction="sum"), d)
    want = with_grads(lambda e: composed(fusedkd, "tvd", e) * D, d)
    assert_same(got, want, TOL[torch.float64])


@pytest.mark.parametrize("grad_of", ["input", "weight", "none"])
def test_weights_that_do_and_do_not_require_grad(grad_of):
    d = make(seed=12, bias=False)
    h = d["h"].clone().requires_grad_(grad_of == "input")
    W = d["W"].clone().requires_grad_(grad_of == "weight")
    loss = fusedkd.fused_linear_distillation_loss(h, W, d["g"], d["Wt"], d["y"], chunk_size=8)
    want = with_grads(lambda e: composed(fusedkd, "jsd", e), d)
    torch.testing.assert_close(loss.detach(), want[0], **TOL[torch.float64])
    if grad_of == "none":
        assert not loss.requires_grad
        return
    loss.backward()
    if grad_of == "input":
        assert W.grad is None
        torch.testing.assert_close(h.grad, want[1][0], **TOL[torch.float64])
    else:
        assert h.grad is None
        torch.testing.assert_close(W.grad, want[1][1], **TOL[torch.float64])


def test_backward_scales_by_grad_output():
    d = make(dtype=torch.float32, seed=13)
    runs = []
    for scale in (3.0, 1.0):
        h, W = d["h"].clone().requires_grad_(), d["W"].clone().requires_grad_()
        (scale * fusedkd.fused_linear_distillation_loss(h, W, d["g"], d["Wt"], d["y"], chunk_size=8)).backward()
        runs.append((h.grad, W.grad))
    torch.testing.assert_close(runs[0][0], 3.0 * runs[1][0], **TOL[torch.float32])
    torch.testing.assert_close(runs[0][1], 3.0 * runs[1][1], **TOL[torch.float32])


def test_accumulation_dtype():
    """bfloat16 accumulators round once per chunk: within 2% of the largest entry of the float32 result."""
    d = make(dtype=torch.bfloat16, seed=13)
    grads = []
    for acc in (torch.bfloat16, None):
        W = d["W"].clone().requires_grad_()
        fusedkd.fused_linear_distillation_loss(d["h"], W, d["g"], d["Wt"], d["y"], chunk_size=8,
                                               accumulation_dtype=acc).backward()
        grads.append(W.grad)
    assert grads[0].dtype == grads[1].dtype == torch.bfloat16
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=2e-2 * float(grads[1].abs().max()))


def test_non_contiguous_inputs():
    d = make(seed=14)
    e = dict(d)
    e["h"] = torch.stack([d["h"], torch.zeros_like(d["h"])], dim=1)[:, 0]  # strided rows
    e["W"] = d["W"].t().contiguous().t()  # column-major weight
    e["g"] = d["g"].t().contiguous().t()
    e["y"] = torch.stack([d["y"], d["y"]], dim=1)[:, 0]
    assert not e["h"].is_contiguous() and not e["W"].is_contiguous() and not e["y"].is_contiguous()
    got = with_grads(lambda x: fused("nkd", x, chunk_size=11), e)
    want = with_grads(lambda x: composed(fusedkd, "nkd", x), d)
    assert_same(got, want, TOL[torch.float64])


def test_nan_in_gives_nan_out():
    d = make(seed=15)
    d["h"][3, 0] = float("nan")
    loss = fused("jsd", d, chunk_size=7)
    assert torch.isnan(loss) and torch.isnan(composed(fusedkd, "jsd", d))


@pytest.mark.parametrize("loss", ["jsd", "dkd", "topk_kd"])
def test_gradcheck_in_float64(loss):
    d = make(N=5, H=3, Ht=4, V=7, seed=16, k=3)
    kw = KWARGS.get(loss, {})
    teacher = (None, None, None) if loss == "topk_kd" else (d["g"], d["Wt"], d["bt"])
    extra = dict(teacher_topk_logprobs=d["lp"], teacher_topk_indices=d["idx"]) if loss == "topk_kd" else {}

    def f(h, W, b):
        return fusedkd.fused_linear_distillation_loss(h, W, teacher[0], teacher[1], d["y"], b, teacher[2], loss=loss,
                                                      chunk_size=2, **extra, **kw)

    args = [d[k].clone().requires_grad_() for k in ("h", "W", "b")]
    assert torch.autograd.gradcheck(f, args)


def test_module_matches_the_function_and_repr():
    d = make(seed=17)
    m = fusedkd.FusedLinearDistillationLoss("jsd", chunk_size=9, weight_hard_loss=0.2, weight_soft_loss=0.8, beta=0.1)
    a = m(d["h"], d["W"], d["g"], d["Wt"], d["y"], d["b"], d["bt"])
    b = fused("jsd", d, chunk_size=9, weight_hard_loss=0.2, weight_soft_loss=0.8, beta=0.1)
    assert a.item() == b.item()
    assert "loss='jsd'" in repr(m) and "beta=0.1" in repr(m)


def test_torch_compile_of_a_training_step():
    d = make(N=32, seed=18, dtype=torch.float32)
    torch.manual_seed(0)
    body = torch.nn.Linear(12, 12)
    head = torch.nn.Linear(12, 40)
    fn = fusedkd.FusedLinearDistillationLoss("reverse_kl", chunk_size=8)

    def step(x):
        loss = fn(body(x), head.weight, d["g"], d["Wt"], d["y"], head.bias, d["bt"])
        loss.backward()
        return loss.detach()

    eager = step(d["h"])
    grads = [p.grad.clone() for p in (*body.parameters(), *head.parameters())]
    for p in (*body.parameters(), *head.parameters()):
        p.grad = None
    compiled = torch.compile(step)(d["h"])
    torch.testing.assert_close(compiled, eager)
    for p, g in zip((*body.parameters(), *head.parameters()), grads):
        torch.testing.assert_close(p.grad, g)


def test_default_chunk_size_bounds_the_chunk():
    V, H = 128256, 4096
    n = fused_linear.default_chunk_size(V, H, torch.bfloat16, device="cuda")
    assert n % fused_linear.CHUNK_ROW_MULTIPLE == 0
    assert n * V * (2 * 2 + 2) <= fused_linear.CHUNK_BYTES < (n + fused_linear.CHUNK_ROW_MULTIPLE) * V * 6 + 1
    assert fused_linear.default_chunk_size(V, H, torch.float32, rows=10) == 10
    assert fused_linear.default_chunk_size(10**9, H, torch.float32) == 1


def test_bad_arguments_name_the_argument():
    d = make(seed=19)
    with pytest.raises(ValueError, match="uskd"):
        fused("uskd", d)
    with pytest.raises(ValueError, match="loss must be one of"):
        fused("kl", d)
    with pytest.raises(TypeError, match="takes no argument 'alpha'"):
        fused("jsd", d, alpha=1.0)
    with pytest.raises(TypeError, match="takes no argument 'alpha'"):
        fusedkd.FusedLinearDistillationLoss("jsd", alpha=1.0)
    with pytest.raises(ValueError, match="student_weight must have shape"):
        fusedkd.fused_linear_distillation_loss(d["h"], d["W"][:, :5], d["g"], d["Wt"], d["y"])
    with pytest.raises(ValueError, match=r"teacher_weight has 39 rows \(V\) but student_weight has 40"):
        fusedkd.fused_linear_distillation_loss(d["h"], d["W"], d["g"], d["Wt"][:39], d["y"])
    with pytest.raises(ValueError, match="true_labels must have"):
        fusedkd.fused_linear_distillation_loss(d["h"], d["W"], d["g"], d["Wt"], d["y"][:5])
    with pytest.raises(ValueError, match="true_labels is required"):
        fusedkd.fused_linear_distillation_loss(d["h"], d["W"], d["g"], d["Wt"], None)
    with pytest.raises(ValueError, match="chunk_size must be positive"):
        fused("jsd", d, chunk_size=0)
    with pytest.raises(ValueError, match="needs teacher_topk_logprobs"):
        fusedkd.fused_linear_distillation_loss(d["h"], d["W"], None, None, d["y"], loss="topk_kd")
    with pytest.raises(ValueError, match="pass teacher_input=None"):
        fusedkd.fused_linear_distillation_loss(d["h"], d["W"], d["g"], d["Wt"], d["y"], loss="tfnkd")
    with pytest.raises(TypeError, match="student_weight is float32 but student_input is float64"):
        fusedkd.fused_linear_distillation_loss(d["h"], d["W"].float(), d["g"], d["Wt"], d["y"])
    with pytest.raises(ValueError, match="reduction must be 'batchmean' or 'sum'"):
        fused("jsd", d, reduction="none")


def test_without_labels_every_token_counts():
    d = make(seed=20)
    got = fusedkd.fused_linear_distillation_loss(d["h"], d["W"], d["g"], d["Wt"], None, weight_hard_loss=0.0,
                                                 weight_soft_loss=1.0, chunk_size=13)
    s, t = torch_F.linear(d["h"], d["W"]), torch_F.linear(d["g"], d["Wt"])
    torch.testing.assert_close(got, fusedkd.jsd_loss(s, t), **TOL[torch.float64])


CUDA = torch.cuda.is_available() and fusedkd.HAS_CUDA_KERNELS


@pytest.mark.skipif(not CUDA, reason="no CUDA device (or a build without the CUDA kernels)")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("loss", ["jsd", "dkd", "topk_kd", "tfnkd"])
def test_cuda_matches_the_cpu_without_synchronizing(dtype, loss):
    """The CUDA path (cuBLAS GEMMs, the CUDA loss kernels, the float32-out weight-gradient GEMM for
    bfloat16) against the same composition on the CPU, with torch's sync debug mode set to raise on any
    host synchronization inside the step."""
    d = make(N=200, H=64, Ht=48, V=1000, dtype=dtype, seed=21)
    kw = KWARGS.get(loss, {})
    cpu = with_grads(lambda e: composed(fusedkd, loss, e, **kw), d)
    dc = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in d.items()}
    n = torch.tensor(int((d["y"] != -100).sum()), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = with_grads(lambda e: fused(loss, e, chunk_size=48, num_items_in_batch=n, **kw), dc)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    tol = TOL[dtype] if dtype == torch.float32 else dict(rtol=3e-2, atol=3e-3)
    torch.testing.assert_close(got[0].cpu(), cpu[0], **tol)
    for x, y in zip(got[1], cpu[1]):
        torch.testing.assert_close(x.cpu().float(), y.float(), rtol=tol["rtol"], atol=tol["atol"] * float(y.abs().max()))


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_loss_alone_under_no_grad_and_inference_mode(mode):
    d = make(seed=22, bias=False)
    want = composed(fusedkd, "dkd", d)
    ctx = torch.no_grad() if mode == "no_grad" else torch.inference_mode()
    h, W = d["h"].clone().requires_grad_(), d["W"].clone().requires_grad_()
    with ctx:
        got = fusedkd.fused_linear_distillation_loss(h, W, d["g"], d["Wt"], d["y"], loss="dkd", chunk_size=7)
    assert not got.requires_grad
    torch.testing.assert_close(got, want.detach(), **TOL[torch.float64])
