"""fusedkd.distributed: losses on vocabulary shards over gloo, 2 and 4 processes.

Each world size is one group of spawned processes that runs every case of distributed_worker.CASES
(one spawn per world: starting processes costs seconds, a case milliseconds); the tests then compare
what each rank got with the unsharded fusedkd loss and the pure-PyTorch reference on the full logits:

* every rank's loss is the same, bit for bit (every rank merges the same states in the same order);
* fp64 with shards of exactly 256 columns (one block of the unsharded CPU row loop each, so the
  merge order is the unsharded one): loss and gradient bit-identical to unsharded fusedkd;
* otherwise (uneven shards, a 1-column shard, fp32): within fp32 rounding of unsharded fusedkd
  (rtol 2e-5, atol 1e-6; bf16: rtol 1e-2) and of the float64 reference (rtol 1e-4, atol 1e-6).

The groups run with a 60 s collective timeout and the processes are joined with a deadline and
killed past it: a hang fails the test instead of blocking CI, and no process outlives it.
"""

from __future__ import annotations

import functools
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import distributed_worker as W
import fusedkd
from fusedkd import reference

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with the gloo backend is not available")

DEADLINE_S = 240  # one world's processes: spawn, every case, exit


def _spawn(world: int, which: str) -> list[dict]:
    """Runs distributed_worker.main on `world` processes; returns each rank's results."""
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        ctx = mp.start_processes(W.entry, args=(world, init_file, tmp, which), nprocs=world, join=False,
                                 start_method="spawn")
        try:
            import time

            t0 = time.monotonic()
            while not ctx.join(timeout=1):
                if time.monotonic() - t0 > DEADLINE_S:
                    raise TimeoutError(f"the {world} gloo processes did not finish in {DEADLINE_S} s")
        finally:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
                    p.join()
        return [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=False) for r in range(world)]


@functools.lru_cache(maxsize=None)
def _results(world: int, which: str = "cases"):
    return _spawn(world, which)


def _unsharded(case: W.Case, world: int, module):
    s, t, y, extra = W.inputs(case, world)
    if module is reference:
        s, t = s.double(), t.double()
        if extra is not None:
            extra = (extra[0].double(), extra[1])
    s = s.clone().requires_grad_()
    loss = W.call(module, case, s, t, y, extra)
    (loss.sum() if case.reduction == "none" else loss).backward()
    return loss.detach(), s.grad.detach()


def _gathered(world: int, case: W.Case):
    res = _results(world)
    for r in range(world):
        assert "error" not in res[r][case.name], f"rank {r}:\n{res[r][case.name]['error']}"
    losses = [res[r][case.name]["loss"] for r in range(world)]
    grad = torch.cat([res[r][case.name]["grad"] for r in range(world)], dim=-1)
    return losses, grad


def _tol(case: W.Case):
    if case.dtype == torch.bfloat16:
        return dict(rtol=1e-2, atol=1e-3)
    return dict(rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("case", W.CASES, ids=[c.name for c in W.CASES])
def test_sharded_equals_unsharded(world, case):
    losses, grad = _gathered(world, case)
    for r in range(1, world):
        assert torch.equal(losses[r], losses[0]), f"rank {r}'s loss differs from rank 0's"
    want_loss, want_grad = _unsharded(case, world, fusedkd)
    assert grad.shape == want_grad.shape
    if case.split == "blocks":
        assert torch.equal(losses[0], want_loss), (losses[0], want_loss)
        assert torch.equal(grad, want_grad), (grad - want_grad).abs().max()
    else:
        torch.testing.assert_close(losses[0], want_loss, **_tol(case))
        torch.testing.assert_close(grad.to(want_grad.dtype), want_grad, **_tol(case))


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("case", [c for c in W.CASES if c.labels == "ignored" or c.N == 0], ids=lambda c: c.name)
def test_nothing_counts_gives_zero(world, case):
    """Every row ignored, or no rows: loss 0 (batchmean divides by max(count, 1)), gradient 0, on every rank."""
    losses, grad = _gathered(world, case)
    assert all(float(l) == 0.0 for l in losses), losses
    assert grad.shape[0] == case.N and not grad.any()


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("case", [c for c in W.CASES if c.dtype != torch.bfloat16], ids=lambda c: c.name)
def test_sharded_matches_reference(world, case):
    losses, grad = _gathered(world, case)
    ref_loss, ref_grad = _unsharded(case, world, reference)
    torch.testing.assert_close(losses[0].double(), ref_loss.double(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grad.double(), ref_grad.double(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("world", [2, 4])
def test_bad_input_raises_on_every_rank(world):
    res = _results(world, "errors")
    expect = {
        "rows": "different numbers of rows",
        "target": "out of range",
        "dtype": "",  # the rank with the float64 teacher names it; the others name that rank
        "param": "temperature",
        "uskd": "USKD is not supported",
        "standardize": "logit_standardization",
        "topk_index": "teacher_topk_indices",
    }
    for key, text in expect.items():
        for r in range(world):
            msg = res[r][key]
            assert msg is not None, f"{key}: rank {r} raised nothing"
            assert text in msg, f"{key}: rank {r}: {msg}"
    last = world - 1
    assert "float64" in res[last]["dtype"], res[last]["dtype"]
    assert all(f"[{last}]" in res[r]["dtype"] for r in range(last)), [res[r]["dtype"] for r in range(world)]
    assert all(res[r]["after"] is None for r in range(world)), "the group does not work after the errors"


def test_collective_counts():
    fd = fusedkd.distributed
    assert fd.collectives("kd") == 2 and fd.collectives("kd", explicit_layout=True) == 1
    assert fd.collectives("jsd", explicit_layout=True) == 2
    assert fd.collectives("tvd", explicit_layout=True) == 2
    assert fd.collectives("rld", explicit_layout=True) == 2
    assert fd.collectives("dkd_loss", explicit_layout=True) == 1


def test_requires_an_initialized_group():
    if dist.is_initialized():
        pytest.skip("a default group exists in this process")
    with pytest.raises(RuntimeError, match="not initialized"):
        fusedkd.distributed.kd_loss(torch.randn(2, 3), torch.randn(2, 3))
