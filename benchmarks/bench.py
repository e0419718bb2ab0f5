"""Forward+backward timing of every fused loss vs its pure-PyTorch reference (eager) vs
torch.compile(reference), with a torch.add roofline, on CPU or CUDA.

    python benchmarks/bench.py --device cpu                 # vision shapes (trimmed, see --max-elements)
    python benchmarks/bench.py --device cpu --quick         # four small shapes
    python benchmarks/bench.py --device cuda --quick        # what scripts/gpu_check.sh runs (~1-2 min)
    python benchmarks/bench.py --device cuda                # the issue's full matrix, fp32 and bf16 (long:
                                                            # split it with --shapes/--dtype/--losses)

Method
- Inputs: student, teacher (USKD: weak logits) [N, C] in the chosen dtype, labels [N]; seeded.
- One measurement = forward + backward of the loss term alone (``loss.backward()``).
- Variants: ``fused`` (fusedkd.*_loss), ``eager`` (fusedkd.reference.*_loss), ``compile``
  (torch.compile(reference, dynamic=False); compile time excluded and reported separately);
  on CUDA also ``graph`` (the eager reference captured in a CUDA graph, replayed) and ``liger``
  (Liger-Kernel's KL-div loss for KD, its JSD for forward / reverse KL and JSD, its TVD; when
  ``liger_kernel`` imports); for the token losses ``trl`` / ``trl_compile`` (TRL's
  ``generalized_jsd_loss``, eager and compiled, when ``trl`` imports).
- LLM shapes (--shapes llm, or --llm): N ∈ {4096, 16384} tokens × V ∈ {32000, 128256, 151936}; on the
  CPU trimmed to N·V ≤ --max-elements (2^23 by default; the issue's CPU bound is about 2^26).
- CPU: warm-up, then ``time.perf_counter`` per run, fixed thread count (--threads).
  CUDA: warm-up, CUDA events per run, a 256 MB buffer written before each run (outside the timed
  region) to flush L2 on large shapes, ``torch.cuda.max_memory_allocated`` above the inputs per
  variant, and kernels per fwd+bwd counted with torch.profiler.
- Reported: median with 20th/80th percentiles; effective bandwidth counting read student + read
  teacher + write gradient once each; the same bytes timed by ``torch.add(s, t, out=g)`` (two reads,
  one write) as the roofline ("copy bandwidth"), and the fused time as a fraction of it.
- Output (--out, default benchmarks/results/<device>): results_<dtype>.md / .csv and
  speedup_<dtype>.png (speed-up per loss and shape; achieved fraction of the roofline).
Only losses that exist in both ``fusedkd`` and ``fusedkd.reference`` are measured.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time

import torch

import fusedkd
from fusedkd import reference

from fusedkd._ops import OP_ARGS  # noqa: E402
from fusedkd._specs import LOSS_OPS  # noqa: E402


# Top-k KD's sparse teacher, from the dense teacher logits of a shape: the top TOPK_K log-probabilities
# and their indices (made once per teacher tensor, outside the timed region).
TOPK_K = 64
_TOPK_CACHE: dict = {}


def _topk_teacher(t):
    key = (t.data_ptr(), tuple(t.shape))
    if key not in _TOPK_CACHE:
        _TOPK_CACHE.clear()
        with torch.no_grad():
            _TOPK_CACHE[key] = torch.log_softmax(t.float(), -1).topk(min(TOPK_K, t.shape[-1]), dim=-1)
    return _TOPK_CACHE[key]


def _call_of(op, **kwargs):
    """call(module, s, t, w, y) of one loss op, its inputs as its schema names them: the teacher or
    the weak logits second (none for a teacher-free loss; top-k KD: the teacher's top-k log-probabilities
    and indices), the labels last when it takes them."""
    spec = OP_ARGS[op.name]
    weak = spec.second == "weak_logits"
    takes_labels = spec.labels is not None

    def call(m, s, t, w, y):
        if op.name == "topk_kd":
            second = tuple(_topk_teacher(t))
        else:
            second = () if spec.second is None else (w if weak else t,)
        return getattr(m, op.function)(s, *second, *((y,) if takes_labels else ()), **kwargs)

    return op.function, call


# name -> (function name, call(module, s, t, w, y)): every op of the spec list (fusedkd._specs), plus
# variants with other hyper-parameters.
_ALL_LOSSES = {op.name: _call_of(op) for op in LOSS_OPS}
_ALL_LOSSES["rld_std"] = _call_of(next(op for op in LOSS_OPS if op.name == "rld"), logit_standardization=True)
LOSSES = {k: f for k, (fn, f) in _ALL_LOSSES.items() if hasattr(fusedkd, fn) and hasattr(reference, fn)}

VISION = [(n, c) for n in (128, 1024, 4096) for c in (100, 1000, 21843)]
LLM = [(n, c) for n in (4096, 16384) for c in (32000, 128256, 151936)]
# The LLM shapes a 2-core CPU allows (N·V up to about 2^26), in place of LLM there.
LLM_CPU = [(512, 32000), (2048, 32000), (512, 128256)]
QUICK = [(128, 100), (1024, 100), (128, 1000), (1024, 1000)]
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def percentiles(xs):
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]  # noqa: E731
    return statistics.median(xs), q(0.2), q(0.8)


class Timer:
    """Median/p20/p80 seconds of fn(): at least min_runs and at most runs, within budget_s."""

    def __init__(self, device: str, flush: bool, runs: int, budget_s: float, min_runs: int = 5):
        self.device, self.runs, self.budget_s, self.min_runs = device, runs, budget_s, min_runs
        self.flush = flush and device == "cuda"
        self.buffer = torch.empty(64 * 2**20, dtype=torch.float32, device=device) if self.flush else None

    def __call__(self, fn, warmup: int = 3):
        for _ in range(warmup):
            t0 = time.perf_counter()
            fn()
            if time.perf_counter() - t0 > 0.2 * self.budget_s:  # slow shape: one warm-up call is enough
                break
        times, t_end = [], time.perf_counter() + self.budget_s
        while len(times) < self.runs and (len(times) < self.min_runs or time.perf_counter() < t_end):
            if self.device == "cuda":
                if self.flush:
                    self.buffer.zero_()  # before the start event: not timed
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                torch.cuda.synchronize()
                times.append(start.elapsed_time(end) * 1e-3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return percentiles(times)


def make_inputs(N, C, dtype, device, need_weak: bool):
    """Seeded logits generated on the device itself (the LLM shapes are GBs), std 3."""
    g = torch.Generator(device=device).manual_seed(0)

    def logits():
        return (torch.randn(N, C, generator=g, device=device, dtype=dtype) * 3)

    s, t = logits().requires_grad_(True), logits()
    w = logits().requires_grad_(True) if need_weak else None  # USKD's weak logits
    y = torch.randint(0, C, (N,), generator=g, device=device)
    return s, t, w, y


def cuda_graph(fn, s, w):
    """The eager reference (fwd+bwd) captured in a CUDA graph; returns its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    s.grad = None
    if w is not None:
        w.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def count_kernels(fn) -> int:
    """GPU kernels (and memsets/copies) launched by one call of fn, from torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def variants(name, s, t, w, y, args, notes):
    """{variant: fn} plus compile seconds; failures are noted, not raised."""
    call = LOSSES[name]
    out = {
        "fused": lambda: call(fusedkd, s, t, w, y).backward(),
        "eager": lambda: call(reference, s, t, w, y).backward(),
    }
    compile_s = float("nan")
    if args.compile_now:
        try:
            torch._dynamo.reset()
            compiled = torch.compile(lambda s, t, w, y: call(reference, s, t, w, y), dynamic=False)
            t0 = time.perf_counter()
            compiled(s, t, w, y).backward()  # compiles forward and backward
            if args.device == "cuda":
                torch.cuda.synchronize()
            compile_s = time.perf_counter() - t0
            out["compile"] = lambda: compiled(s, t, w, y).backward()
        except Exception as e:  # noqa: BLE001 - torch.compile is best effort here
            notes.add(f"torch.compile failed for {name} ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                      "that column is left empty")
    if args.device == "cuda":
        try:
            out["graph"] = cuda_graph(out["eager"], s, w)
        except Exception as e:  # noqa: BLE001
            notes.add(f"CUDA-graph capture of the eager {name} reference failed ({type(e).__name__})")
        if name == "kd":
            try:
                from liger_kernel.transformers import LigerKLDIVLoss

                liger, T = LigerKLDIVLoss(reduction="batchmean", log_target=False), 4.0
                out["liger"] = lambda: (
                    liger(torch.log_softmax(s.float() / T, 1), torch.softmax(t.float() / T, 1)) * T * T
                ).backward()
            except Exception as e:  # noqa: BLE001 - Liger is optional
                notes.add(f"Liger-Kernel not measured ({type(e).__name__}: {str(e).splitlines()[0][:80]})")
    out.update(anchors(name, s, t, y, args, notes))
    s.grad = None
    if w is not None:
        w.grad = None
    return out, compile_s


# The token losses' β in TRL's generalized_jsd_loss (and Liger's JSD, same convention), at the defaults
# the fused functions have.
_TRL_BETA = {"forward_kl": 0.0, "reverse_kl": 1.0, "jsd": 0.5}


def anchors(name, s, t, y, args, notes):
    """The other libraries' implementations of the same loss, where they import: TRL's
    ``generalized_jsd_loss`` (eager and compiled) for forward / reverse KL and JSD, Liger-Kernel's JSD and
    TVD (Triton: CUDA only; they take log-probabilities / probabilities, so the softmaxes are timed too)."""
    out = {}
    if name in _TRL_BETA:
        try:
            from trl.experimental.gkd import GKDTrainer

            jsd, beta = GKDTrainer.generalized_jsd_loss, _TRL_BETA[name]
            out["trl"] = lambda: jsd(s, t, labels=y, beta=beta).backward()
            if args.compile_now:
                compiled = torch.compile(lambda s, t, y: jsd(s, t, labels=y, beta=beta), dynamic=False)
                compiled(s, t, y).backward()
                out["trl_compile"] = lambda: compiled(s, t, y).backward()
        except Exception as e:  # noqa: BLE001 - TRL is optional
            notes.add(f"TRL's generalized_jsd_loss not measured ({type(e).__name__}: {str(e).splitlines()[0][:80]})")
    if args.device == "cuda" and name in ("jsd", "forward_kl", "reverse_kl", "tvd"):
        try:
            from liger_kernel.transformers import LigerJSD, LigerTVDLoss

            rows = (-1, s.shape[-1])
            if name == "tvd":
                tvd = LigerTVDLoss(reduction="batchmean")
                out["liger"] = lambda: tvd(torch.softmax(s.float().view(rows), -1),
                                           torch.softmax(t.float().view(rows), -1), y.view(-1)).backward()
            else:
                ljsd = LigerJSD(beta=_TRL_BETA[name])
                out["liger"] = lambda: ljsd(torch.log_softmax(s.float().view(rows), -1),
                                            torch.log_softmax(t.float().view(rows), -1), y.view(-1)).backward()
        except Exception as e:  # noqa: BLE001 - Liger is optional
            notes.add(f"Liger-Kernel {name} not measured ({type(e).__name__}: {str(e).splitlines()[0][:80]})")
    return out


def shapes_for(args, notes):
    llm = LLM
    if args.device == "cpu" and args.shapes in ("llm", "all"):
        llm = LLM_CPU
        notes.add("CPU: the LLM shapes are " + ", ".join(f"{n}×{c}" for n, c in LLM_CPU)
                  + " (N·V ≤ about 2^26), not the GPU's 4096/16384 × 32000/128256/151936")
    shapes = {"quick": QUICK, "vision": VISION, "llm": llm, "all": VISION + llm}[args.shapes]
    if args.max_elements and args.device == "cpu":
        skipped = [sh for sh in shapes if sh[0] * sh[1] > args.max_elements]
        if skipped:
            notes.add(f"CPU run trimmed to N·C ≤ {args.max_elements}: skipped "
                      + ", ".join(f"{n}×{c}" for n, c in skipped) + " (pass --max-elements 0 to include them)")
        shapes = [sh for sh in shapes if sh[0] * sh[1] <= args.max_elements]
    return shapes


def run(args, dtype_name, notes):
    device, dtype = args.device, DTYPES[dtype_name]
    rows = []
    shapes = shapes_for(args, notes)
    if args.shapes == "quick" and not args.no_compile:
        notes.add(f"--quick: torch.compile measured on the largest shape only ({shapes[-1][0]}×{shapes[-1][1]})")
    for N, C in shapes:
        # --quick: torch.compile (seconds per loss and shape) only on the largest shape
        args.compile_now = not args.no_compile and (args.shapes != "quick" or (N, C) == shapes[-1])
        if device == "cuda":
            torch.cuda.empty_cache()
        try:
            s, t, w, y = make_inputs(N, C, dtype, device, need_weak="uskd" in args.losses)
            nbytes = 3 * N * C * s.element_size()
            big = N * C * s.element_size() > 2**24
            timer = Timer(device, flush=big, runs=args.runs, budget_s=args.budget)
            g = torch.empty_like(s)
            roof, _, _ = timer(lambda: torch.add(s.detach(), t, out=g))
        except (RuntimeError, MemoryError) as e:  # e.g. out of memory for the largest LLM shapes
            notes.add(f"shape {N}×{C} skipped: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            continue
        for name in args.losses:
            fns, compile_s = variants(name, s, t, w, y, args, notes)
            for variant, fn in fns.items():
                if device == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                try:
                    med, p20, p80 = timer(fn)
                    kernels = count_kernels(fn) if device == "cuda" else ""
                except Exception as e:  # noqa: BLE001 - report and go on
                    notes.add(f"{name}/{variant} failed at {N}×{C}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
                    continue
                peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device == "cuda" else ""
                s.grad = None
                if w is not None:
                    w.grad = None
                rows.append(dict(
                    loss=name, variant=variant, N=N, C=C, dtype=dtype_name, median_us=med * 1e6, p20_us=p20 * 1e6,
                    p80_us=p80 * 1e6, gbps=nbytes / med / 1e9, roofline_us=roof * 1e6, roofline_gbps=nbytes / roof / 1e9,
                    frac_roofline=roof / med, peak_extra_mib=peak, kernels=kernels,
                    compile_s=compile_s if variant == "compile" else ""))
                print(f"  {dtype_name} {name:7s} {variant:7s} N={N:6d} C={C:7d} {med * 1e6:11.1f} us "
                      f"[{p20 * 1e6:.1f}, {p80 * 1e6:.1f}] {nbytes / med / 1e9:7.2f} GB/s "
                      f"{roof / med:6.1%} of torch.add", flush=True)
            del fns
    return rows


def markdown(rows, dtype_name, args, notes):
    by = {(r["loss"], r["N"], r["C"], r["variant"]): r for r in rows}
    order = {n: i for i, n in enumerate(_ALL_LOSSES)}
    keys = sorted({(r["loss"], r["N"], r["C"]) for r in rows}, key=lambda k: (order[k[0]], k[1], k[2]))
    extra = [v for v in ("graph", "liger", "trl", "trl_compile") if any(r["variant"] == v for r in rows)]
    cuda = args.device == "cuda"
    head = ["loss", "N", "C", "fused", "eager ref", "compile(ref)"] + [{"graph": "eager in CUDA graph",
            "liger": "Liger (KLDiv / JSD / TVD)", "trl": "TRL generalized_jsd_loss",
            "trl_compile": "compile(TRL)"}[v] for v in extra] + ["fused vs eager", "fused vs compile", "fused GB/s",
            "torch.add GB/s", "fused BW / torch.add BW"] + (["kernels fused/eager/compile", "peak MiB fused/eager"] if cuda else [])
    lines = [
        f"Device: {describe(args.device)}; dtype {dtype_name}; torch {torch.__version__}; {time.strftime('%Y-%m-%d')}. "
        "Forward+backward of the loss alone, median µs [p20, p80]. Bytes: read student + read teacher + write "
        "gradient. Roofline: torch.add(s, t, out=g) on the same bytes.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]

    def cell(r):
        return f"{r['median_us']:.0f} [{r['p20_us']:.0f}, {r['p80_us']:.0f}]" if r else "—"

    for k in keys:
        f = by.get(k + ("fused",))
        if f is None:
            continue
        e, c = by.get(k + ("eager",)), by.get(k + ("compile",))
        ratio = lambda r: f"{r['median_us'] / f['median_us']:.2f}×" if r else "—"  # noqa: E731
        cols = [k[0], k[1], k[2], cell(f), cell(e), cell(c)] + [cell(by.get(k + (v,))) for v in extra]
        cols += [ratio(e), ratio(c), f"{f['gbps']:.2f}", f"{f['roofline_gbps']:.2f}", f"{f['frac_roofline']:.1%}"]
        if cuda:
            kern = lambda r: str(r["kernels"]) if r else "—"  # noqa: E731
            mem = lambda r: f"{r['peak_extra_mib']:.0f}" if r else "—"  # noqa: E731
            cols += [f"{kern(f)}/{kern(e)}/{kern(c)}", f"{mem(f)}/{mem(e)}"]
        lines.append("| " + " | ".join(str(x) for x in cols) + " |")
    comp = [r["compile_s"] for r in rows if r["variant"] == "compile"]
    if comp:
        lines += ["", f"torch.compile time (excluded above): median {statistics.median(comp):.1f} s per loss and shape."]
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in sorted(notes)]
    return "\n".join(lines), keys, by


def plot(keys, by, args, dtype_name, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, vs_eager, vs_compile, fracs = [], [], [], []
    for k in keys:
        f, e, c = (by.get(k + (v,)) for v in ("fused", "eager", "compile"))
        if f and e:
            labels.append(f"{k[0]} {k[1]}×{k[2]}")
            vs_eager.append(e["median_us"] / f["median_us"])
            vs_compile.append(c["median_us"] / f["median_us"] if c else float("nan"))
            fracs.append(f["frac_roofline"])
    x = range(len(labels))
    fig, axes = plt.subplots(2, 1, figsize=(max(8, len(labels) * 0.42), 8.5))
    axes[0].bar([i - 0.2 for i in x], vs_eager, width=0.4, label="vs eager reference", color="tab:blue")
    axes[0].bar([i + 0.2 for i in x], vs_compile, width=0.4, label="vs torch.compile(reference)", color="tab:orange")
    axes[0].axhline(1.0, color="k", lw=0.8)
    target = 3.0 if args.device == "cpu" else 10.0  # the targets vs the eager reference
    axes[0].axhline(target, color="tab:red", lw=0.8, ls="--", label=f"target: {target:.0f}× eager")
    axes[0].set_ylabel("fused speed-up (fwd+bwd)")
    axes[0].legend(fontsize=8)
    axes[1].bar(list(x), fracs, color="tab:green")
    axes[1].set_ylabel("fraction of torch.add bandwidth\n(roofline time / fused time)")
    for ax in axes:
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, fontsize=7, rotation=90)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"fusedkd, {describe(args.device)}, {dtype_name} — medians")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def describe(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    name = "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def main():
    p = argparse.ArgumentParser(description="fusedkd benchmark harness (see the module docstring)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", nargs="+", default=None, choices=list(DTYPES),
                   help="default: fp32 on CPU, fp32 and bf16 on CUDA")
    p.add_argument("--shapes", choices=["quick", "vision", "llm", "all"], default=None,
                   help="vision: N∈{128,1024,4096}×C∈{100,1000,21843}; llm: N∈{4096,16384}×C∈{32000,128256,151936}; "
                   "default: vision on CPU, all on CUDA")
    p.add_argument("--quick", action="store_true", help="= --shapes quick: four small shapes, compile on the largest only")
    p.add_argument("--llm", action="store_true", help="add the LLM shapes (CPU: opt-in)")
    p.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    p.add_argument("--runs", type=int, default=50, help="most timed runs per variant")
    p.add_argument("--budget", type=float, default=None, help="seconds per variant (at least 5 runs); "
                   "default 1 on CPU, 2 on CUDA")
    p.add_argument("--max-elements", type=int, default=2**23, help="CPU only: skip shapes with N·C above this (0: none)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    if args.device == "cuda" and not fusedkd.HAS_CUDA_KERNELS:
        p.error("--device cuda but this fusedkd build has no CUDA kernels")
    if args.quick:
        args.shapes = "quick"
    args.shapes = args.shapes or ("all" if args.device == "cuda" else "vision")
    if args.llm and args.shapes == "vision":
        args.shapes = "all"
    quick = args.shapes == "quick"
    args.dtype = args.dtype or (["fp32", "bf16"] if args.device == "cuda" and not quick else ["fp32"])
    args.budget = args.budget if args.budget is not None else (0.3 if quick else 2.0 if args.device == "cuda" else 1.0)
    args.out = args.out or os.path.join("benchmarks", "results", args.device)
    torch.manual_seed(0)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    for dtype_name in args.dtype:
        notes: set[str] = set()
        rows = run(args, dtype_name, notes)
        if not rows:
            print(f"no results for {dtype_name}")
            continue
        with open(os.path.join(args.out, f"results_{dtype_name}.csv"), "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=list(rows[0]))
            wr.writeheader()
            wr.writerows(rows)
        table, keys, by = markdown(rows, dtype_name, args, notes)
        with open(os.path.join(args.out, f"results_{dtype_name}.md"), "w") as f:
            f.write(table + "\n")
        print(table)
        try:
            plot(keys, by, args, dtype_name, os.path.join(args.out, f"speedup_{dtype_name}.png"))
        except ImportError:
            print("matplotlib not available: no plot")
    print(f"total {time.perf_counter() - start:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
