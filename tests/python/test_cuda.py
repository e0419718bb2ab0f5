"""The CUDA ops against the CPU ops and the float64 reference (fusedkd.reference): every loss,
dtype and reduction over a grid of shapes up to C = 128256, odd strides, ±1e4 logits,
ignore_index, out-of-range labels (NaN on the GPU), determinism, torch.compile(fullgraph=True),
CUDA graph capture and the current stream. Skipped without a GPU.

Tolerances (CUDA vs float64 reference on the same rounded inputs; CUDA vs CPU op likewise):
  float64  rtol 1e-9,  atol 1e-11            — same math, different summation order
  float32  rtol 1e-4,  atol 1e-5 (loss) / 1e-6 (grad, relative to max |grad|)
  float16  rtol 2e-3,  atol 1e-5             — fp32 accumulation, 2^-11 rounding of the gradient
  bfloat16 rtol 1.6e-2, atol 1e-4            — 2^-8 rounding of the gradient
USKD's gradient also depends on a ranking of the scores: near-ties may rank differently on the
GPU and the CPU (different exp rounding), which moves a Zipf weight by ~1/(k²·H_C); its
gradients get atol 2e-4·max|grad|.
"""

from __future__ import annotations

import pytest
import torch

import fusedkd
from cases import CASE_IDS, CASES, LABELLED

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: GPU tests need a GPU")

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]
REDUCTIONS = ["batchmean", "sum", "none"]

# (N, C): vision sizes, odd sizes, LLM vocabularies (few rows for the biggest).
SHAPES = [(1, 2), (3, 7), (64, 100), (1024, 100), (64, 1000), (33, 1001), (16, 4096), (4, 32000), (3, 50257),
          (2, 128256)]

TOL = {
    torch.float64: dict(rtol=1e-9, atol=1e-11),
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.float16: dict(rtol=2e-3, atol=1e-5),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-4),
}


def _grad_tol(case, dtype, g_ref):
    tol = dict(TOL[dtype])
    scale = float(g_ref.abs().max()) if g_ref.numel() else 0.0
    if dtype == torch.float32:
        tol["atol"] = 1e-6 * max(scale, 1e-30) + 1e-12
    if case.name.startswith("uskd"):
        tol["atol"] = max(tol["atol"], 2e-4 * scale)
    return tol


def _on(args, device, dtype=None):
    out = []
    for a in args:
        b = a.detach().to(device)
        if dtype is not None and b.is_floating_point():
            b = b.to(dtype)
        out.append(b)
    return out


def _leaf(case, args):
    for a in args[: case.n_diff]:
        a.requires_grad_(True)
    return args


def _loss_and_grads(case, args, **kw):
    out = case.call(case.fused, args, **kw)
    grads = torch.autograd.grad(out.sum(), args[: case.n_diff]) if out.numel() else [torch.zeros_like(a) for a in args[: case.n_diff]]
    return out, grads


def _ref_loss_and_grads(case, args, **kw):
    ref = _leaf(case, _on(args, "cpu", torch.float64))
    out = case.call(case.ref, ref, **kw)
    grads = torch.autograd.grad(out.sum(), ref[: case.n_diff]) if out.numel() else [torch.zeros_like(a) for a in ref[: case.n_diff]]
    return out, grads


def _shapes_for(dtype):
    # Keep the slow float64 reference and the O(C²) USKD ranking modest: the full grid in
    # float32, a subset for the other dtypes.
    if dtype == torch.float32:
        return SHAPES
    return [(1, 2), (3, 7), (64, 100), (33, 1001), (16, 4096), (3, 50257)]


GRID = [(c, d, n, C) for c in CASES for d in DTYPES for (n, C) in _shapes_for(d)]


@pytest.mark.parametrize(
    "case,dtype,N,C", GRID, ids=[f"{c.name}-{str(d)[6:]}-N{n}-C{C}" for c, d, n, C in GRID])
def test_cuda_matches_cpu_and_reference(case, dtype, N, C):
    if C < case.min_classes:
        pytest.skip("too few classes for this loss")
    base = case.inputs(N, C, dtype=dtype, seed=N * 131 + C, requires_grad=False)
    if case.has_target and N > 1:
        base[-1][1::4] = -100  # ignore_index rows
    for reduction in REDUCTIONS:
        gpu = _leaf(case, _on(base, "cuda"))
        cpu = _leaf(case, _on(base, "cpu"))
        out_g, grads_g = _loss_and_grads(case, gpu, reduction=reduction)
        out_c, grads_c = _loss_and_grads(case, cpu, reduction=reduction)
        out_r, grads_r = _ref_loss_and_grads(case, base, reduction=reduction)
        assert out_g.device.type == "cuda"
        assert out_g.dtype == out_c.dtype
        assert out_g.shape == out_c.shape
        torch.testing.assert_close(out_g.cpu(), out_c, **TOL[dtype])
        torch.testing.assert_close(out_g.cpu().double(), out_r, **TOL[dtype])
        for g, gc, gr in zip(grads_g, grads_c, grads_r):
            assert g.dtype == dtype and g.device.type == "cuda"
            torch.testing.assert_close(g.cpu(), gc, **_grad_tol(case, dtype, gc.double()))
            torch.testing.assert_close(g.cpu().double(), gr, **_grad_tol(case, dtype, gr))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_mixed_and_strided_inputs(case, dtype):
    # Rows further apart than C (odd padding: the scalar path) and a transposed teacher (made
    # contiguous by the op); the teacher in another dtype than the student where allowed.
    N, C = 9, 1001
    uskd = case.name.startswith("uskd")
    student_dtype = dtype
    teacher_dtype = dtype if uskd else (torch.bfloat16 if dtype == torch.float32 else torch.float32)
    base = case.inputs(N, C, dtype=torch.float32, seed=17, requires_grad=False)
    wide = torch.full((N, C + 5), float("nan"), device="cuda", dtype=student_dtype)
    wide[:, 2 : 2 + C] = base[0].to(student_dtype).cuda()
    s = wide[:, 2 : 2 + C].detach()  # row stride C + 5, odd offset: the scalar path
    t = base[1].to(teacher_dtype).cuda().t().contiguous().t().detach()  # column stride != 1
    args = [s, t] + ([base[2].cuda()] if case.has_target else [])
    _leaf(case, args)
    out, grads = _loss_and_grads(case, args)
    dense = _leaf(case, [a.detach().contiguous() for a in args])
    out_d, grads_d = _loss_and_grads(case, dense)
    torch.testing.assert_close(out, out_d)
    for g, gd in zip(grads, grads_d):
        torch.testing.assert_close(g, gd)
    cpu = _leaf(case, _on(args, "cpu"))
    out_c, _ = _loss_and_grads(case, cpu)
    torch.testing.assert_close(out.cpu(), out_c, **TOL[dtype])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("C", [100, 50257])
def test_extreme_logits(case, C):
    base = case.inputs(8, C, dtype=torch.float64, scale=1e4, seed=3, requires_grad=False)
    for dtype in (torch.float64, torch.float32):
        gpu = _leaf(case, _on(base, "cuda", dtype))
        cpu = _leaf(case, _on(base, "cpu", dtype))
        out_g, grads_g = _loss_and_grads(case, gpu, reduction="none")
        out_c, grads_c = _loss_and_grads(case, cpu, reduction="none")
        assert torch.isfinite(out_g).all()
        tol = dict(rtol=1e-9, atol=1e-6) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-3 * 1e4 * 1e-3)
        torch.testing.assert_close(out_g.cpu(), out_c, **tol)
        for g, gc in zip(grads_g, grads_c):
            assert torch.isfinite(g).all()
            scale = float(gc.abs().max())
            torch.testing.assert_close(g.cpu(), gc, rtol=4e-3, atol=2e-4 * scale)


@pytest.mark.parametrize("case", LABELLED, ids=[c.name for c in LABELLED])
@pytest.mark.parametrize("C", [10, 3000, 40000])
def test_ignore_index_and_counting(case, C):
    args = case.inputs(8, C, seed=6, device="cuda", requires_grad=False)
    args[-1][[1, 4, 7]] = -1
    _leaf(case, args)
    out, grads = _loss_and_grads(case, args, reduction="batchmean", ignore_index=-1)
    assert (grads[0][[1, 4, 7]] == 0).all()
    total = case.call(case.fused, args, reduction="sum", ignore_index=-1)
    torch.testing.assert_close(out, total / 5)
    rows = case.call(case.fused, args, reduction="none", ignore_index=-1)
    assert (rows[[1, 4, 7]] == 0).all()
    args[-1][:] = -1  # every row ignored: loss 0, gradient 0
    out, grads = _loss_and_grads(case, args, reduction="batchmean", ignore_index=-1)
    assert out.item() == 0.0 and (grads[0] == 0).all()


@pytest.mark.parametrize("case", LABELLED, ids=[c.name for c in LABELLED])
@pytest.mark.parametrize("C", [10, 3000, 40000])
def test_out_of_range_label_is_nan_on_gpu(case, C):
    # The CPU op raises; the GPU op cannot without a host synchronization, so the row's loss
    # and gradient are NaN (documented in docs/cuda.md).
    args = case.inputs(4, C, seed=7, device="cuda")
    y = args[-1].detach().clone()
    y[2] = C
    args[-1] = y
    out, grads = _loss_and_grads(case, args, reduction="none")
    assert torch.isnan(out[2])
    assert torch.isnan(grads[0][2]).all()
    assert torch.isnan(case.call(case.fused, args)).item()
    with pytest.raises((RuntimeError, ValueError)):
        case.call(case.fused, _on(args, "cpu"))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("C", [100, 5000, 40000])
def test_deterministic(case, C):
    args = _leaf(case, case.inputs(64, C, seed=8, device="cuda", requires_grad=False))
    out1, g1 = _loss_and_grads(case, args)
    out2, g2 = _loss_and_grads(case, args)
    assert torch.equal(out1, out2)
    for a, b in zip(g1, g2):
        assert torch.equal(a, b)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_torch_compile_fullgraph(case):
    torch._dynamo.reset()
    args = case.inputs(16, 1000, seed=9, device="cuda")

    def f(*xs):
        return case.call(case.fused, list(xs)) * 2.0

    compiled = torch.compile(f, fullgraph=True)
    out = compiled(*args)
    eager = f(*args)
    torch.testing.assert_close(out, eager)
    g = torch.autograd.grad(out, args[: case.n_diff])
    ge = torch.autograd.grad(eager, args[: case.n_diff])
    for a, b in zip(g, ge):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("C", [100, 40000])
def test_cuda_graph_capture(case, C):
    static = case.inputs(32, C, seed=10, device="cuda", requires_grad=False)

    def run():
        args = _leaf(case, [a for a in static])
        with torch.enable_grad():
            out = case.call(case.fused, args)
        return out

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            run()  # warm-up outside the graph (allocator, lazy init)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = run()
    fresh = case.inputs(32, C, seed=11, device="cuda", requires_grad=False)
    for a, b in zip(static, fresh):
        a.detach().copy_(b)
    graph.replay()
    torch.cuda.synchronize()
    expected = case.call(case.fused, [a.detach().clone() for a in fresh])
    torch.testing.assert_close(captured.detach(), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_upstream_gradient_scaled_on_the_device(case, dtype):
    # backward scales the forward's gradient in place on the GPU (fusedkd::scale_grad_, factor read
    # on the device): bit for bit the CPU op's scaling of the CUDA op's unit-upstream gradient, for
    # a scalar factor, 1 (nothing written), and per-row factors with "none".
    acc = torch.float32
    args = case.inputs(48, 1000, dtype=dtype, seed=21, device="cuda")
    diff = args[: case.n_diff]
    unit = [g.cpu() for g in torch.autograd.grad(case.call(case.fused, args), diff)]
    unit_rows = [g.cpu() for g in torch.autograd.grad(case.call(case.fused, args, reduction="none").sum(), diff)]
    for factor in [1.0, 3.5, 1 / 3]:
        got = torch.autograd.grad(factor * case.call(case.fused, args), diff)
        for g, u in zip(got, unit):
            want = u.clone()
            torch.ops.fusedkd.scale_grad_(want, torch.tensor(factor, dtype=acc))
            torch.testing.assert_close(g.cpu(), want, rtol=0, atol=0)
    w = torch.linspace(-2, 2, 48, dtype=acc)
    w[::5] = 1.0
    got = torch.autograd.grad((w.cuda() * case.call(case.fused, args, reduction="none")).sum(), diff)
    for g, u in zip(got, unit_rows):
        want = u.clone()
        torch.ops.fusedkd.scale_grad_(want, w)
        torch.testing.assert_close(g.cpu(), want, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_and_backward_captured_in_one_cuda_graph(case):
    # A whole training step's loss part — forward, backward with a loss weight (the device-side
    # scale_grad_) — captured in a CUDA graph: nothing in it may synchronize with the host, and a
    # replay on new inputs gives the eager gradients.
    N, C, weight = 64, 1000, 0.75
    static = _leaf(case, case.inputs(N, C, seed=30, device="cuda"))

    def step():
        for a in static[: case.n_diff]:
            a.grad = None
        loss = weight * case.call(case.fused, static)
        loss.backward()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step()  # warm-up outside the graph
    torch.cuda.current_stream().wait_stream(side)
    for a in static[: case.n_diff]:
        a.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = weight * case.call(case.fused, static)
        captured.backward()
    grads = [a.grad for a in static[: case.n_diff]]
    fresh = case.inputs(N, C, seed=31, device="cuda", requires_grad=False)
    with torch.no_grad():
        for a, b in zip(static, fresh):
            a.copy_(b)
    graph.replay()
    torch.cuda.synchronize()
    args = _leaf(case, [b.clone() for b in fresh])
    expected = weight * case.call(case.fused, args)
    expected_grads = torch.autograd.grad(expected, args[: case.n_diff])
    torch.testing.assert_close(captured.detach(), expected.detach(), rtol=0, atol=0)
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_current_stream_is_used():
    N, C = 256, 32000
    s_old = torch.zeros(N, C, device="cuda")
    t = torch.randn(N, C, device="cuda")
    s_new = torch.randn(N, C, device="cuda")
    expected = fusedkd.kd_loss(s_new, t)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # keep the side stream busy, then update the input on it
        s_old.copy_(s_new)
        out = fusedkd.kd_loss(s_old, t)  # must run after the copy, on the side stream
    side.synchronize()
    torch.testing.assert_close(out, expected)


def test_device_mismatch_names_the_argument():
    s = torch.randn(4, 10, device="cuda")
    t = torch.randn(4, 10)
    with pytest.raises(RuntimeError, match="teacher_logits"):
        fusedkd.ops.kd(s, t, 4.0, False, "batchmean", False)
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(RuntimeError, match="target"):
        fusedkd.ops.dkd(s, s.clone(), y, 1.0, 8.0, 4.0, False, "batchmean", -100, False)
    if torch.cuda.device_count() > 1:
        t1 = torch.randn(4, 10, device="cuda:1")
        with pytest.raises(RuntimeError, match="teacher_logits"):
            fusedkd.ops.kd(s, t1, 4.0, False, "batchmean", False)


def test_cuda_kernels_registered():
    assert fusedkd.HAS_CUDA_KERNELS
