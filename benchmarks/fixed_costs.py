"""Fixed costs of a fused step on a small batch, side by side: what autograd and the op call cost
besides the kernel (the reason KD at [128, 100] cannot reach 3x the eager reference on the CPU).

    python benchmarks/fixed_costs.py [--n 128] [--c 100] [--threads 2]

Each line: the best of 5 rounds of --calls calls, µs per call.
"""

from __future__ import annotations

import argparse
import time

import torch

import fusedkd
from fusedkd import reference


def per_call_us(fn, calls: int, rounds: int = 5) -> float:
    for _ in range(calls // 10 + 1):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--c", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=2000)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(a.n, a.c, generator=g) * 3).requires_grad_(True)
    t = torch.randn(a.n, a.c, generator=g) * 3

    def fused_step():
        s.grad = None
        fusedkd.kd_loss(s, t).backward()

    def reference_step():
        s.grad = None
        reference.kd_loss(s, t).backward()

    def fused_forward():
        fusedkd.kd_loss(s, t)

    def raw_op():
        torch.ops.fusedkd.kd.default(s.detach(), t, 4.0, False, "batchmean", True)

    def trivial_step():
        s.grad = None
        (s * 1.0).sum().backward()

    print(f"KD, fp32, [{a.n}, {a.c}], {a.threads} thread(s), torch {torch.__version__}")
    for name, fn in [
        ("eager reference, fwd+bwd", reference_step),
        ("fused, fwd+bwd", fused_step),
        ("fused, forward with gradient", fused_forward),
        ("raw op torch.ops.fusedkd.kd (no autograd)", raw_op),
        ("trivial graph (s * 1.0).sum().backward()", trivial_step),
    ]:
        print(f"  {name:45s} {per_call_us(fn, a.calls):8.1f} µs")


if __name__ == "__main__":
    main()
