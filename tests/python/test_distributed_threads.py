"""fusedkd.distributed in one process: the ranks of a group are threads, and torch.distributed's
collectives are replaced by a thread-barrier exchange (ThreadGroup) that gives every rank the same
bytes an all-gather / all-reduce would. This runs the whole Python layer and the shard ops on any
device — the CPU here, and the CUDA kernels on a machine with one GPU, where NCCL would need one
GPU per rank. The multi-process gloo tests (test_distributed.py) check the real collectives.

Checked, for the cases of distributed_worker.CASES (DTensor cases excepted):
  - the loss is bit-identical on every rank;
  - loss and concatenated shard gradients equal the unsharded fusedkd result on the same device:
    bit for bit for float64 256-column shards on the CPU (the unsharded merge order), else within
    float64 1e-10 / float32 1e-5 / bfloat16 1.6e-2 relative;
  - CUDA: the CUDA shards equal the CPU shards within the same tolerances, and with an explicit
    layout a loss makes no host synchronization (torch.cuda.set_sync_debug_mode("error")).
"""

from __future__ import annotations

import threading

import pytest
import torch

import fusedkd
import fusedkd.distributed as fd
from distributed_worker import CASES, call, inputs, shard_sizes, vocab

THREAD_TIMEOUT_S = 60
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-6),
       torch.bfloat16: dict(rtol=1.6e-2, atol=1e-4)}


class ThreadGroup:
    """The torch.distributed calls fusedkd.distributed makes, for `world` threads of one process."""

    def __init__(self, world: int):
        self.world = world
        self.barrier = threading.Barrier(world, timeout=THREAD_TIMEOUT_S)
        self.slots = [None] * world
        self.local = threading.local()
        self.ProcessGroup = object

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_world_size(self, group=None):
        return self.world

    def get_rank(self, group=None):
        return self.local.rank

    def _exchange(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.slots[self.local.rank] = x.detach().clone()  # collectives are not recorded by autograd
        self.barrier.wait()
        values = list(self.slots)
        self.barrier.wait()  # every rank has read the slots before any writes the next
        return values

    @torch.no_grad()
    def all_gather_into_tensor(self, out, x, group=None):
        out.copy_(torch.cat(self._exchange(x), dim=0))

    @torch.no_grad()
    def all_reduce(self, x, group=None):
        values = self._exchange(x)
        total = values[0].clone()
        for v in values[1:]:
            total += v
        x.copy_(total)

    def run(self, fn):
        """fn(rank) on every rank's thread; the results in rank order (re-raises a rank's error)."""
        results, errors = [None] * self.world, [None] * self.world

        def body(rank):
            self.local.rank = rank
            try:
                results[rank] = fn(rank)
            except BaseException as e:  # noqa: BLE001 - re-raised below
                errors[rank] = e
                self.barrier.abort()  # the other ranks stop waiting

        threads = [threading.Thread(target=body, args=(r,)) for r in range(self.world)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(THREAD_TIMEOUT_S * 2)
        assert not any(t.is_alive() for t in threads), "a rank's thread did not finish"
        first = next((e for e in errors if e is not None and not isinstance(e, threading.BrokenBarrierError)),
                     next((e for e in errors if e is not None), None))
        if first is not None:
            raise first
        return results


@pytest.fixture
def threads(monkeypatch):
    def make(world):
        group = ThreadGroup(world)
        monkeypatch.setattr(fd, "dist", group)
        return group

    return make


def _inputs(case, world, device):
    s, t, y, extra = inputs(case, world)
    to = lambda x: None if x is None else x.to(device)
    return to(s), to(t), to(y), None if extra is None else tuple(to(e) for e in extra)


def _sharded(group, case, data, explicit_layout=False):
    """Every rank's (loss, shard gradient) for the case's inputs `data` (_inputs)."""
    world = group.world
    sizes = shard_sizes(case, world)
    V = vocab(case, world)
    s, t, y, extra = data

    def rank_fn(rank):
        start = sum(sizes[:rank])
        s_shard = s[:, start:start + sizes[rank]].clone().requires_grad_()
        t_shard = t[:, start:start + sizes[rank]].clone()
        layout = dict(vocab_start=start, vocab_size=V) if explicit_layout or case.explicit_layout else {}
        loss = call(fd, case, s_shard, t_shard, y, extra, **layout)
        (loss.sum() if case.reduction == "none" else loss).backward()
        return loss.detach(), s_shard.grad.detach()

    return group.run(rank_fn)


def _unsharded(case, s, t, y, extra):
    s = s.clone().requires_grad_()
    loss = call(fusedkd, case, s, t, y, extra)
    (loss.sum() if case.reduction == "none" else loss).backward()
    return loss.detach(), s.grad.detach()


CASE_LIST = [c for c in CASES if not c.dtensor]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("case", CASE_LIST, ids=[c.name for c in CASE_LIST])
def test_thread_ranks_match_unsharded(case, world, device, threads):
    data = _inputs(case, world, device)
    results = _sharded(threads(world), case, data)
    losses = [r[0] for r in results]
    for rank, loss in enumerate(losses[1:], start=1):
        assert torch.equal(loss, losses[0]), f"rank {rank}'s loss is not rank 0's bit for bit"
    grad = torch.cat([r[1] for r in results], dim=1)
    want_loss, want_grad = _unsharded(case, *data)
    exact = device == "cpu" and case.split == "blocks" and case.teacher != "topk"
    if exact:
        assert torch.equal(losses[0], want_loss)
        assert torch.equal(grad, want_grad)
    else:
        tol = TOL[case.dtype]
        torch.testing.assert_close(losses[0].double(), want_loss.double(), **tol)
        torch.testing.assert_close(grad.double(), want_grad.double(), **tol)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CUDA shard kernels need a GPU")
@pytest.mark.parametrize("case", CASE_LIST, ids=[c.name for c in CASE_LIST])
def test_cuda_shards_match_cpu_shards(case, threads):
    cpu = _sharded(threads(2), case, _inputs(case, 2, "cpu"))
    gpu = _sharded(threads(2), case, _inputs(case, 2, "cuda"))
    tol = TOL[case.dtype]
    for (lc, gc), (lg, gg) in zip(cpu, gpu):
        torch.testing.assert_close(lg.cpu().double(), lc.double(), **tol)
        torch.testing.assert_close(gg.cpu().double(), gc.double(), **tol)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CUDA shard kernels need a GPU")
@pytest.mark.parametrize("loss", ["dkd", "rld", "jsd", "topk_kd"])
def test_cuda_explicit_layout_makes_no_host_synchronization(loss, threads):
    case = next(c for c in CASE_LIST if c.loss == loss and c.dtype == torch.float32)
    group = threads(2)
    data = _inputs(case, 2, "cuda")
    _sharded(group, case, data, explicit_layout=True)  # warm-up: loads, allocator
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _sharded(group, case, data, explicit_layout=True)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_thread_group_detects_a_missing_rank(threads):
    """The harness itself: a rank that raises before its exchange stops the others (no hang)."""
    group = threads(2)

    def fn(rank):
        if rank == 1:
            raise ValueError("rank 1 fails")
        return fd.kd_loss(torch.randn(3, 4), torch.randn(3, 4), vocab_start=0, vocab_size=8)

    with pytest.raises(ValueError, match="rank 1 fails"):
        group.run(fn)
