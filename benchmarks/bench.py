"""Forward+backward timing of every fused loss vs its pure-PyTorch reference (eager) vs
torch.compile(reference), with a torch.add roofline, on CPU or CUDA.

    python benchmarks/bench.py --device cpu --quick
    python benchmarks/bench.py --device cuda            # the full matrix of the issue

Method
- Inputs: student, teacher (USKD: weak logits) [N, C] in the chosen dtype, labels [N].
- One measurement = forward + backward of the loss alone (``loss.backward()``).
- CPU: warm-up, then ``time.perf_counter`` over many runs, fixed thread count.
  CUDA: warm-up, CUDA events per run, a 256 MB buffer written between runs to flush L2 for large
  shapes, and ``torch.cuda.max_memory_allocated`` per variant (peak above the inputs).
- Reported: median with 20th/80th percentiles; effective bandwidth counting
  read student + read teacher + write gradient once each; the same bytes timed by
  ``torch.add(s, t, out=g)`` (two reads, one write) as the roofline, and the fused time as a
  fraction of it.
- Liger-Kernel's KL-divergence loss is timed for KD when ``liger_kernel`` imports on CUDA.
Output: a markdown table and a CSV in --out, and PNG plots when matplotlib is available.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time

import torch

import fusedkd
from fusedkd import reference

LOSSES = {
    "kd": lambda m, s, t, w, y: m.kd_loss(s, t),
    "dkd": lambda m, s, t, w, y: m.dkd_loss(s, t, y),
    "nkd": lambda m, s, t, w, y: m.nkd_loss(s, t, y),
    "rld": lambda m, s, t, w, y: m.rld_loss(s, t, y),
    "uskd": lambda m, s, t, w, y: m.uskd_loss(s, w, y),
}

VISION = [(n, c) for n in (128, 1024, 4096) for c in (100, 1000, 21843)]
LLM = [(n, c) for n in (4096, 16384) for c in (32000, 128256, 151936)]
QUICK = [(128, 100), (1024, 100), (128, 1000), (1024, 1000)]


def percentiles(xs):
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]  # noqa: E731
    return statistics.median(xs), q(0.2), q(0.8)


class Timer:
    def __init__(self, device: str, flush: bool):
        self.device = device
        self.flush = flush and device == "cuda"
        self.buffer = torch.empty(64 * 2**20, dtype=torch.float32, device=device) if self.flush else None

    def __call__(self, fn, runs: int, warmup: int = 5):
        for _ in range(warmup):
            fn()
        times = []
        if self.device == "cuda":
            for _ in range(runs):
                if self.flush:
                    self.buffer.zero_()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) * 1e-3)
        else:
            for _ in range(runs):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return percentiles(times)


def make_inputs(N, C, dtype, device):
    g = torch.Generator(device="cpu").manual_seed(0)
    s = (torch.randn(N, C, generator=g) * 3).to(device=device, dtype=dtype).requires_grad_(True)
    t = (torch.randn(N, C, generator=g) * 3).to(device=device, dtype=dtype)
    w = (torch.randn(N, C, generator=g) * 3).to(device=device, dtype=dtype).requires_grad_(True)
    y = torch.randint(0, C, (N,), generator=g).to(device)
    return s, t, w, y


def variants(name, s, t, w, y, device, use_compile):
    out = {
        "fused": lambda: LOSSES[name](fusedkd, s, t, w, y).backward(),
        "eager": lambda: LOSSES[name](reference, s, t, w, y).backward(),
    }
    if use_compile:
        compiled = torch.compile(lambda s, t, w, y: LOSSES[name](reference, s, t, w, y), dynamic=False)
        out["compile"] = lambda: compiled(s, t, w, y).backward()
    if name == "kd" and device == "cuda":
        try:
            from liger_kernel.transformers import LigerKLDIVLoss

            liger = LigerKLDIVLoss(reduction="batchmean", log_target=False)
            T = 4.0
            out["liger"] = lambda: (
                liger(torch.log_softmax(s.float() / T, 1), torch.softmax(t.float() / T, 1)) * T * T
            ).backward()
        except Exception:  # noqa: BLE001 - Liger is optional
            pass
    return out


def run(args):
    device = args.device
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    shapes = QUICK if args.quick else VISION + (LLM if (args.llm or device == "cuda") else [])
    torch.set_num_threads(args.threads) if device == "cpu" else None
    rows = []
    for N, C in shapes:
        s, t, w, y = make_inputs(N, C, dtype, device)
        nbytes = 3 * N * C * s.element_size()
        runs = args.runs if N * C <= 2**22 else max(5, args.runs // 5)
        timer = Timer(device, flush=N * C * s.element_size() > 2**24)
        g = torch.empty_like(s)
        roof, _, _ = timer(lambda: torch.add(s.detach(), t, out=g), runs)
        for name in args.losses:
            for variant, fn in variants(name, s, t, w, y, device, not args.no_compile).items():
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                try:
                    med, p20, p80 = timer(fn, runs)
                except Exception as e:  # noqa: BLE001 - report and go on (e.g. compile unavailable)
                    print(f"  {name}/{variant} N={N} C={C}: failed: {type(e).__name__}: {e}".splitlines()[0])
                    continue
                s.grad = None
                w.grad = None
                peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device == "cuda" else float("nan")
                rows.append(dict(loss=name, variant=variant, N=N, C=C, dtype=args.dtype, median_us=med * 1e6,
                                 p20_us=p20 * 1e6, p80_us=p80 * 1e6, gbps=nbytes / med / 1e9,
                                 roofline_us=roof * 1e6, frac_roofline=roof / med, peak_extra_mib=peak))
                print(f"  {name:5s} {variant:8s} N={N:6d} C={C:7d} {med * 1e6:10.1f} us  "
                      f"[{p20 * 1e6:.1f}, {p80 * 1e6:.1f}]  {nbytes / med / 1e9:7.2f} GB/s  "
                      f"{roof / med:6.1%} of torch.add", flush=True)
    return rows


def write(rows, args):
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"results_{args.dtype}.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    by = {(r["loss"], r["N"], r["C"], r["variant"]): r for r in rows}
    keys = sorted({(r["loss"], r["N"], r["C"]) for r in rows}, key=lambda k: (k[0], k[1], k[2]))
    lines = [
        f"Device: {describe(args.device)}; dtype {args.dtype}; torch {torch.__version__}; "
        f"{time.strftime('%Y-%m-%d')}. Times: fwd+bwd median µs [p20, p80].",
        "",
        "| loss | N | C | fused | eager ref | compile(ref) | speed-up vs eager | vs compile | fused GB/s | % of torch.add |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in keys:
        f, e, c = (by.get(k + (v,)) for v in ("fused", "eager", "compile"))
        if f is None:
            continue
        cell = lambda r: f"{r['median_us']:.0f} [{r['p20_us']:.0f}, {r['p80_us']:.0f}]" if r else "—"  # noqa: E731
        ratio = lambda r: f"{r['median_us'] / f['median_us']:.2f}×" if r else "—"  # noqa: E731
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {cell(f)} | {cell(e)} | {cell(c)} | {ratio(e)} | {ratio(c)} | "
                     f"{f['gbps']:.2f} | {f['frac_roofline']:.0%} |")
    table = "\n".join(lines)
    with open(os.path.join(args.out, f"results_{args.dtype}.md"), "w") as fh:
        fh.write(table + "\n")
    print(table)
    try:
        plot(rows, keys, by, args)
    except ImportError:
        pass


def plot(rows, keys, by, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, speedups, fracs = [], [], []
    for k in keys:
        f, e = by.get(k + ("fused",)), by.get(k + ("eager",))
        if f and e:
            labels.append(f"{k[0]}\n{k[1]}×{k[2]}")
            speedups.append(e["median_us"] / f["median_us"])
            fracs.append(f["frac_roofline"])
    fig, axes = plt.subplots(2, 1, figsize=(max(8, len(labels) * 0.45), 8))
    axes[0].bar(range(len(labels)), speedups, color="tab:blue")
    axes[0].axhline(1.0, color="k", lw=0.8)
    axes[0].set_ylabel("speed-up vs eager reference")
    axes[1].bar(range(len(labels)), fracs, color="tab:green")
    axes[1].set_ylabel("fraction of torch.add roofline")
    for ax in axes:
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=6, rotation=90)
    fig.suptitle(f"fusedkd fwd+bwd, {describe(args.device)}, {args.dtype}")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, f"speedup_{args.dtype}.png"), dpi=110)


def describe(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    name = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name} ({torch.get_num_threads()} threads)"


def main():
    p = argparse.ArgumentParser(description="fusedkd benchmark harness")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--quick", action="store_true", help="a few small shapes")
    p.add_argument("--llm", action="store_true", help="also the vocabulary shapes on CPU")
    p.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    args.out = args.out or os.path.join("benchmarks", "results", args.device)
    write(run(args), args)


if __name__ == "__main__":
    main()
