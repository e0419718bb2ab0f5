"""Vocabulary-parallel losses over gloo (CPU): collectives, bytes exchanged and time per step.

    python benchmarks/bench_distributed.py [--worlds 2 4] [--rows 1024] [--vocab 32000] [--reps 5]

For each world size, spawns that many gloo processes; each holds [rows, vocab / world] fp32 shards of
the student's and teacher's logits and runs forward + backward of

* fusedkd.distributed.<loss>_loss, with an explicit layout (vocab_start, vocab_size: the Megatron-style
  call, one collective per state exchange) and with the default (shard sizes all-gathered per call);
* fusedkd.reference.vocab_parallel_kd_loss: KD as Model-Optimizer's / Megatron-LM's tensor-parallel KD
  losses compute it in plain torch.distributed (all-reduce MAX and SUM per distribution, all-reduce of
  the per-row loss), the baseline for KD.

Collectives and bytes are counted by wrapping torch.distributed's all_reduce / all_gather_into_tensor
(bytes: what one rank contributes). Time: the median over --reps steps of rank 0, after one warm-up.
Only gloo on the CPU: no multi-GPU machine has been lent to this project, so NCCL is not measured.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

LOSSES = ("kd", "dkd", "rld", "jsd", "tvd", "forward_kl", "topk_kd")


class Counter:
    """Counts the collectives (and the bytes each rank contributes) made through torch.distributed."""

    def __init__(self):
        self.calls, self.bytes = 0, 0
        self._orig = {}

    def __enter__(self):
        for name in ("all_reduce", "all_gather_into_tensor"):
            orig = getattr(dist, name)
            self._orig[name] = orig

            def wrapped(*args, _orig=orig, _name=name, **kwargs):
                t = args[1] if _name == "all_gather_into_tensor" else args[0]
                self.calls += 1
                self.bytes += t.numel() * t.element_size()
                return _orig(*args, **kwargs)

            setattr(dist, name, wrapped)
        return self

    def __exit__(self, *exc):
        for name, orig in self._orig.items():
            setattr(dist, name, orig)


def _step(loss_name: str, variant: str, s, t, y, topk, start, vocab):
    import fusedkd.distributed as fd
    from fusedkd import reference

    layout = dict(vocab_start=start, vocab_size=vocab) if variant == "fused" else {}
    if variant == "modelopt":
        return reference.vocab_parallel_kd_loss(s, t, temperature=1.0)
    fn = getattr(fd, f"{loss_name}_loss")
    if loss_name == "kd":
        return fn(s, t, temperature=1.0, **layout)
    if loss_name in ("dkd", "rld"):
        return fn(s, t, y, **layout)
    if loss_name == "topk_kd":
        return fn(s, topk[0], topk[1], **layout)
    return fn(s, t, **layout)


def _worker(rank, world, init_file, out, rows, vocab, reps):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=300))
    torch.set_num_threads(1)
    local = vocab // world
    start = rank * local
    g = torch.Generator().manual_seed(0)
    s_full = 3 * torch.randn(rows, vocab, generator=g)
    t_full = 3 * torch.randn(rows, vocab, generator=g)
    y = torch.randint(0, vocab, (rows,), generator=g)
    lp, idx = torch.log_softmax(t_full, -1).topk(8, -1)
    s = s_full[:, start:start + local].contiguous().requires_grad_()
    t = t_full[:, start:start + local].contiguous()
    results = []
    for loss_name in LOSSES:
        variants = ["fused", "fused_default_layout"] + (["modelopt"] if loss_name == "kd" else [])
        for variant in variants:
            times = []
            for i in range(reps + 1):
                s.grad = None
                dist.barrier()
                with Counter() as c:
                    t0 = time.perf_counter()
                    loss = _step(loss_name, variant, s, t, y, (lp, idx), start, vocab)
                    fwd = (c.calls, c.bytes)
                    loss.backward()
                    elapsed = time.perf_counter() - t0
                if i:
                    times.append(elapsed)
            results.append(dict(loss=loss_name, variant=variant, fwd_calls=fwd[0], fwd_bytes=fwd[1],
                                total_calls=c.calls, total_bytes=c.bytes, ms=1e3 * statistics.median(times)))
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worlds", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    print(f"# bench_distributed: gloo on the CPU, {args.rows} rows x {args.vocab} vocabulary, fp32, "
          f"{os.cpu_count()} CPU(s), torch {torch.__version__}, {datetime.date.today()}")
    print("| world | loss | variant | collectives fwd / fwd+bwd | bytes per row per rank (fwd+bwd) | ms per step |")
    print("|---|---|---|---|---|---|")
    for world in args.worlds:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "out.pt")
            mp.start_processes(_worker, args=(world, os.path.join(tmp, "init"), out, args.rows, args.vocab, args.reps),
                               nprocs=world, start_method="spawn")
            for r in torch.load(out):
                print(f"| {world} | {r['loss']} | {r['variant']} | {r['fwd_calls']} / {r['total_calls']} | "
                      f"{r['total_bytes'] / args.rows:.0f} | {r['ms']:.1f} |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
