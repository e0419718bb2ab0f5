"""The processes of tests/python/test_distributed.py: each joins a gloo group, runs every case of
CASES on its vocabulary shard and saves what it got (loss, shard gradient, or the error's message).

A case's inputs come from its seed, so the parent rebuilds the full logits and computes the unsharded
results itself. Not a test module (no test_ prefix): imported by the test and by the spawned processes.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import traceback

import torch

# The collective timeout of the test groups: a hang fails within it instead of blocking CI.
GROUP_TIMEOUT_S = 60


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    loss: str  # fusedkd.<loss>_loss / fusedkd.distributed.<loss>_loss
    kwargs: tuple = ()  # hyper-parameters ((name, value), ...)
    N: int = 6
    V: int = 37
    dtype: torch.dtype = torch.float32
    labels: str = "mixed"  # "mixed": with an ignored row, the last class and class 0; "ignored": all; "none"
    split: str = "uneven"  # "uneven" (a 1-column shard at 4 ranks), "blocks" (256 columns each: exact), "even"
    dtensor: bool = False
    reduction: str = "batchmean"
    teacher: str = "logits"  # "logits", "none" (teacher-free), "topk"
    explicit_layout: bool = False
    seed: int = 0


def shard_sizes(case: Case, world: int) -> list[int]:
    if case.split == "blocks":
        return [256] * world
    if case.split == "even":
        return [case.V // world + (1 if r < case.V % world else 0) for r in range(world)]
    if world == 2:
        return [case.V - 17, 17]
    assert world == 4
    first = [1, 12, 10]
    return first + [case.V - sum(first)]


def vocab(case: Case, world: int) -> int:
    return sum(shard_sizes(case, world)) if case.split == "blocks" else case.V


def inputs(case: Case, world: int):
    """Full student, teacher (or top-k tensors) and labels of a case, the same on every rank."""
    V = vocab(case, world)
    g = torch.Generator().manual_seed(1000 + case.seed)
    s = (3 * torch.randn(case.N, V, generator=g, dtype=torch.float64)).to(case.dtype)
    t = (3 * torch.randn(case.N, V, generator=g, dtype=torch.float64)).to(case.dtype)
    y = None
    if case.labels == "mixed":
        y = torch.randint(0, V, (case.N,), generator=g)
        for row, label in ((0, V - 1), (1, -100), (2, 0), (3, 5)):  # last shard, ignored, first shard (1 column)
            if row < case.N:
                y[row] = label
    elif case.labels == "ignored":
        y = torch.full((case.N,), -100)
    extra = None
    if case.teacher == "topk":
        k = 5
        lp_full = torch.log_softmax(t.to(torch.float64), dim=-1)
        top = lp_full[:, : V - 1].topk(k - 1, dim=-1).indices
        idx = torch.cat([top, top.new_full((case.N, 1), V - 1)], dim=1)  # distinct, one on the last shard
        vals = lp_full.gather(1, idx)
        extra = (vals.to(torch.float64 if case.dtype == torch.float64 else torch.float32), idx)
    return s, t, y, extra


def loss_kwargs(case: Case) -> dict:
    kw = dict(case.kwargs)
    kw["reduction"] = case.reduction
    return kw


def call(module, case: Case, s, t, y, extra, **layout):
    """module.<loss>_loss on (s, t, y) with the case's arguments (module: fusedkd or fusedkd.distributed)."""
    fn = getattr(module, f"{case.loss}_loss")
    kw = loss_kwargs(case)
    kw.update(layout)
    if case.teacher == "topk":
        return fn(s, extra[0], extra[1], y, **kw)
    if case.teacher == "none":
        return fn(s, y, **kw)
    if y is None:
        return fn(s, t, **kw)
    return fn(s, t, y, **kw)


def run_case(case: Case, rank: int, world: int):
    import fusedkd
    import fusedkd.distributed as fd

    sizes = shard_sizes(case, world)
    start = sum(sizes[:rank])
    s, t, y, extra = inputs(case, world)
    if case.dtensor:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor import Shard, distribute_tensor

        mesh = init_device_mesh("cpu", (world,))
        sd = distribute_tensor(s.clone(), mesh, [Shard(-1)]).requires_grad_()
        td = distribute_tensor(t.clone(), mesh, [Shard(-1)])
        loss = call(fusedkd, case, sd, td, y, extra)
        loss.sum().backward() if case.reduction == "none" else loss.backward()
        return {"loss": loss.detach(), "grad": sd.grad.to_local().detach()}
    s_shard = s[:, start:start + sizes[rank]].clone().requires_grad_()
    t_shard = t[:, start:start + sizes[rank]].clone()
    layout = dict(vocab_start=start, vocab_size=vocab(case, world)) if case.explicit_layout else {}
    loss = call(fd, case, s_shard, t_shard, y, extra, **layout)
    (loss.sum() if case.reduction == "none" else loss).backward()
    return {"loss": loss.detach(), "grad": s_shard.grad.detach()}


# ----------------------------------------------------------------------------- the cases

_TOKEN = ("forward_kl", "reverse_kl", "jsd", "tvd")


def _cases() -> list[Case]:
    out = []
    params = {
        "kd": (("temperature", 4.0),),
        "dkd": (("alpha", 1.0), ("beta", 8.0), ("temperature", 4.0)),
        "nkd": (("temperature", 1.5), ("gamma", 1.5)),
        "rld": (("alpha", 1.0), ("beta", 8.0), ("temperature", 4.0), ("alpha_temperature", 2.0)),
        "forward_kl": (("temperature", 2.0),),
        "reverse_kl": (("temperature", 1.0), ("softcap", 5.0)),
        "jsd": (("beta", 0.3), ("temperature", 1.5)),
        "tvd": (("temperature", 1.0),),
        "cross_entropy": (),
        "tfnkd": (),
    }
    for loss, kw in params.items():
        labels = "none" if loss == "kd" else "mixed"
        teacher = "none" if loss in ("cross_entropy", "tfnkd") else "logits"
        out.append(Case(f"{loss}-fp32-uneven", loss, kw, labels=labels, teacher=teacher))
        out.append(Case(f"{loss}-fp64-blocks", loss, kw, dtype=torch.float64, labels=labels, teacher=teacher,
                        split="blocks", N=4, seed=1))
    out.append(Case("jsd-softcap-beta0.5-none", "jsd", (("beta", 0.5), ("softcap", 4.0)), reduction="none"))
    out.append(Case("jsd-beta0-forward", "jsd", (("beta", 0.0),), labels="none"))
    out.append(Case("tvd-labels-none", "tvd", (), labels="none", reduction="sum"))
    out.append(Case("kd-bf16", "kd", (("temperature", 2.0),), dtype=torch.bfloat16, labels="none"))
    out.append(Case("dkd-explicit-layout", "dkd", (), explicit_layout=True))
    out.append(Case("dkd-none", "dkd", (), reduction="none"))
    out.append(Case("dkd-every-row-ignored", "dkd", (), labels="ignored"))
    out.append(Case("jsd-every-row-ignored", "jsd", (), labels="ignored"))
    out.append(Case("dkd-empty-batch", "dkd", (), N=0))
    out.append(Case("tvd-empty-batch", "tvd", (), N=0, labels="none"))
    for tail in ("ghost", "renormalize", "renormalize_both", "none"):
        out.append(Case(f"topk-{tail}", "topk_kd", (("tail", tail), ("temperature", 1.5)), teacher="topk"))
    out.append(Case("topk-fp64-softcap", "topk_kd", (("softcap", 6.0),), teacher="topk", dtype=torch.float64))
    out.append(Case("dtensor-dkd", "dkd", (("temperature", 2.0),), dtensor=True))
    out.append(Case("dtensor-jsd", "jsd", (("beta", 0.5),), dtensor=True, labels="none"))
    out.append(Case("dtensor-topk", "topk_kd", (), dtensor=True, teacher="topk"))
    return out


CASES = _cases()


# ----------------------------------------------------------------------------- bad input


def run_errors(rank: int, world: int) -> dict:
    """Bad inputs: each must raise on every rank (and no rank may wait forever). Returns the messages."""
    import fusedkd.distributed as fd

    out = {}
    V = 11
    g = torch.Generator().manual_seed(7)
    s = torch.randn(4, V, generator=g)
    t = torch.randn(4, V, generator=g)
    sizes = [V // world + (1 if r < V % world else 0) for r in range(world)]
    start = sum(sizes[:rank])
    cols = slice(start, start + sizes[rank])

    def attempt(key, fn):
        try:
            fn()
            out[key] = None
        except Exception as e:  # noqa: BLE001 - the message is the result
            out[key] = f"{type(e).__name__}: {e}"

    # Rank 1 holds one more row than the others.
    n = 5 if rank == 1 else 4
    attempt("rows", lambda: fd.kd_loss(torch.randn(n, sizes[rank]), torch.randn(n, sizes[rank])))
    # A label outside the global vocabulary.
    attempt("target", lambda: fd.dkd_loss(s[:, cols], t[:, cols], torch.tensor([0, 1, V, 2])))
    # One rank's teacher has another dtype.
    tt = t[:, cols].double() if rank == world - 1 else t[:, cols]
    attempt("dtype", lambda: fd.dkd_loss(s[:, cols], tt, torch.tensor([0, 1, 2, 3])))
    # A bad hyper-parameter (the same on every rank).
    attempt("param", lambda: fd.kd_loss(s[:, cols], t[:, cols], temperature=-1.0))
    # USKD cannot be sharded.
    attempt("uskd", lambda: fd.uskd_loss(s[:, cols], t[:, cols], torch.tensor([0, 1, 2, 3])))
    # Logit standardization cannot be sharded.
    attempt("standardize", lambda: fd.kd_loss(s[:, cols], t[:, cols], logit_standardization=True))
    # A top-k index outside the vocabulary.
    attempt("topk_index", lambda: fd.topk_kd_loss(s[:, cols], torch.full((4, 2), -1.0),
                                                  torch.tensor([[0, V]] * 4)))
    # After all of that the group still works.
    attempt("after", lambda: fd.kd_loss(s[:, cols], t[:, cols]))
    return out


def main(rank: int, world: int, init_file: str, out_dir: str, which: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=GROUP_TIMEOUT_S))
    torch.set_num_threads(1)
    results = {}
    try:
        if which == "cases":
            for case in CASES:
                try:
                    results[case.name] = run_case(case, rank, world)
                except Exception:  # noqa: BLE001 - reported by the parent, per case
                    results[case.name] = {"error": traceback.format_exc()}
        else:
            results = run_errors(rank, world)
    finally:
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.destroy_process_group()


def entry(rank: int, world: int, init_file: str, out_dir: str, which: str) -> None:
    """torch.multiprocessing.start_processes's target (process index first)."""
    main(rank, world, init_file, out_dir, which)
