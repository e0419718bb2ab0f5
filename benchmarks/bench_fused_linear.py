"""The fused linear head + loss against the materialised-logits step: time and peak memory.

    python benchmarks/bench_fused_linear.py --device cpu            # the CPU shapes (a few minutes)
    python benchmarks/bench_fused_linear.py --device cuda --quick   # what scripts/gpu_check.sh runs

One measurement = forward + backward of one training step of the head and the loss,
``0.5 CE(s, y) + 0.5 JSD_β=0.5(s, t)`` (``--loss`` picks the soft term), gradients to the student's
hidden states and head weight; teacher under no_grad. Variants:

- ``fused_linear``: ``fusedkd.fused_linear_distillation_loss`` (default chunk size);
- ``materialised_fused``: ``s = h W_sᵀ`` and ``t = g W_tᵀ`` in full, then ``fusedkd.cross_entropy_loss`` +
  the fusedkd loss, autograd through the GEMM;
- ``materialised_eager``: the same with the pure-PyTorch references (``fusedkd.reference``);
- ``liger`` (CUDA, when ``liger_kernel`` imports and the loss is JSD): ``LigerFusedLinearJSDLoss``.

Peak memory above the inputs and weights: on CUDA ``torch.cuda.max_memory_allocated()`` after a reset,
minus what is allocated before the step; on the CPU each variant runs in a fresh subprocess and the
figure is the growth of the process's peak resident set (``ru_maxrss``) over one step, measured after
the inputs are allocated and touched (the CPU allocator returns large blocks to the OS on free, so the
peak RSS follows the peak of live tensors). Both include the weight gradient, which every variant
produces. Timing: a warm-up step, then the median of ``--reps`` steps (CUDA events on the GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch.nn import functional as torch_F

import fusedkd
from fusedkd import reference

CPU_SHAPES = [(2048, 256, 128256), (4096, 512, 32000)]  # (tokens BT, hidden H, vocabulary V)
CUDA_SHAPES = [(8192, 4096, 128256), (4096, 4096, 32000)]
VARIANTS = ("fused_linear", "materialised_fused", "materialised_eager", "liger")


def inputs(BT, H, V, dtype, device, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    r = lambda *s: (torch.randn(*s, generator=g) * 0.02).to(dtype=dtype, device=device)  # noqa: E731
    h = (torch.randn(BT, H, generator=g)).to(dtype=dtype, device=device).requires_grad_()
    W = r(V, H).requires_grad_()
    t_in = torch.randn(BT, H, generator=g).to(dtype=dtype, device=device)
    Wt = r(V, H)
    y = torch.randint(0, V, (BT,), generator=g).to(device)
    y[::7] = -100
    return h, W, t_in, Wt, y


def step_fn(variant, loss, kw):
    if variant == "fused_linear":
        def step(h, W, g, Wt, y):
            fusedkd.fused_linear_distillation_loss(h, W, g, Wt, y, loss=loss, **kw).backward()
        return step
    if variant in ("materialised_fused", "materialised_eager"):
        lib = fusedkd if variant == "materialised_fused" else reference

        def step(h, W, g, Wt, y):
            s = torch_F.linear(h, W)
            with torch.no_grad():
                t = torch_F.linear(g, Wt)
            out = 0.5 * lib.cross_entropy_loss(s, y) + 0.5 * getattr(lib, f"{loss}_loss")(s, t, y, **kw)
            out.backward()
        return step
    if variant == "liger":
        from liger_kernel.chunked_loss import LigerFusedLinearJSDLoss

        fn = LigerFusedLinearJSDLoss(weight_hard_loss=0.5, weight_soft_loss=0.5, **kw)

        def step(h, W, g, Wt, y):
            fn(h, W, g, Wt, y, None, None).backward()
        return step
    raise ValueError(variant)


def available(variant, loss, device):
    if variant != "liger":
        return True
    if device != "cuda" or loss != "jsd":
        return False
    try:
        import liger_kernel.chunked_loss  # noqa: F401
    except Exception:
        return False
    return True


def measure(variant, loss, kw, BT, H, V, dtype, device, reps):
    """Runs in this process: (median seconds, peak bytes above inputs and weights)."""
    torch.manual_seed(0)
    h, W, g, Wt, y = inputs(BT, H, V, dtype, device)
    step = step_fn(variant, loss, kw)
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step(h, W, g, Wt, y)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        times = []
        for _ in range(reps):
            h.grad = W.grad = None
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            step(h, W, g, Wt, y)
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        step(h, W, g, Wt, y)  # the warm-up step is the measured one for memory
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        times = []
        for _ in range(reps):
            h.grad = W.grad = None
            t0 = time.perf_counter()
            step(h, W, g, Wt, y)
            times.append(time.perf_counter() - t0)
    return statistics.median(times), peak


def run_isolated(args, variant, shape):
    """One (variant, shape) in a fresh process (the CPU's peak RSS is per process)."""
    cmd = [sys.executable, __file__, "--child", variant, "--device", args.device, "--dtype", args.dtype,
           "--loss", args.loss, "--reps", str(args.reps), "--threads", str(args.threads),
           "--shape", ",".join(map(str, shape))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None, None, (out.stderr.strip().splitlines() or ["failed"])[-1]
    sec, peak = json.loads(out.stdout.strip().splitlines()[-1])
    return sec, peak, None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dtype", default=None, choices=("fp32", "bf16"), help="default: fp32 on the CPU, bf16 on CUDA")
    p.add_argument("--loss", default="jsd")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--quick", action="store_true", help="the first shape only")
    p.add_argument("--shape", default=None, help="BT,H,V (default: the device's shapes)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    args = p.parse_args()
    args.dtype = args.dtype or ("bf16" if args.device == "cuda" else "fp32")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    torch.set_num_threads(args.threads)
    kw = {"beta": 0.5} if args.loss == "jsd" else {}
    if args.child:
        BT, H, V = map(int, args.shape.split(","))
        print(json.dumps(measure(args.child, args.loss, kw, BT, H, V, dtype, args.device, args.reps)))
        return
    shapes = [tuple(map(int, args.shape.split(",")))] if args.shape else (
        CUDA_SHAPES if args.device == "cuda" else CPU_SHAPES)
    if args.quick:
        shapes = shapes[:1]
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"# fused linear head + {args.loss}: {device_name}, {args.dtype}, {args.threads} threads, "
          f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}\n")
    print("| BT × H × V | variant | step (ms) | vs materialised_fused | peak above inputs (MiB) | vs materialised_eager |")
    print("|---|---|---|---|---|---|")
    rows = []
    for shape in shapes:
        results = {}
        for variant in VARIANTS:
            if not available(variant, args.loss, args.device):
                continue
            if args.device == "cuda":
                try:
                    sec, peak = measure(variant, args.loss, kw, *shape, dtype, args.device, args.reps)
                    err = None
                except torch.OutOfMemoryError as e:
                    sec = peak = None
                    err = f"out of memory: {str(e).splitlines()[0]}"
                torch.cuda.empty_cache()
            else:
                sec, peak, err = run_isolated(args, variant, shape)
            results[variant] = (sec, peak, err)
        ref_t = results.get("materialised_fused", (None,))[0]
        ref_m = results.get("materialised_eager", (None, None))[1]
        for variant, (sec, peak, err) in results.items():
            label = "×".join(map(str, shape))
            if err:
                print(f"| {label} | {variant} | — | — | — | {err} |")
                continue
            speed = f"{ref_t / sec:.2f}×" if ref_t else "—"
            mem = f"{peak / ref_m:.3f}" if ref_m else "—"
            print(f"| {label} | {variant} | {sec * 1e3:.1f} | {speed} | {peak / 2**20:.0f} | {mem} |")
            rows.append(dict(shape=shape, variant=variant, seconds=sec, peak_bytes=peak))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(device=device_name, dtype=args.dtype, loss=args.loss, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
