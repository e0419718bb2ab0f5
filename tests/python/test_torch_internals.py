"""fusedkd without torch's private APIs (python/fusedkd/_torch_internals.py): a later torch may drop any
of them, and the package must then take its public path and give the same numbers."""

from __future__ import annotations

import pytest
import torch

import fusedkd
from fusedkd import _ops
from fusedkd import _torch_internals as ti

from cases import CASE_IDS, CASES

_OPTIONAL = ["len_torch_dispatch_stack", "is_torch_function_mode_enabled", "peek_interpreter_stack",
             "get_interpreter_stack", "transform_type", "AutoDispatchBelowAutograd"]


@pytest.fixture
def without_private_apis(monkeypatch):
    for name in _OPTIONAL:
        monkeypatch.setattr(ti, name, None)
    monkeypatch.setattr(_ops, "_UNSUPPORTED_TRANSFORMS", ())
    assert not ti.eager_bypass_available()


def _loss_and_grads(case, grad_scale):
    args = case.inputs(6, 11, dtype=torch.float64, seed=4)
    loss = case.call(case.fused, args)
    grads = torch.autograd.grad(loss * grad_scale, args[: case.n_diff])
    return loss.detach(), grads


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("grad_scale", [1.0, 3.0])  # 3: backward scales the saved gradient
def test_every_loss_is_the_same_without_the_private_apis(case, grad_scale, request):
    expected = _loss_and_grads(case, grad_scale)
    request.getfixturevalue("without_private_apis")
    assert not _ops._plain_eager(case.inputs(2, 3))  # the registered-op path
    got = _loss_and_grads(case, grad_scale)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
    for g, e in zip(got[1], expected[1]):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_has_cuda_kernels_comes_from_the_library():
    assert fusedkd.HAS_CUDA_KERNELS == _ops._has_cuda_kernels(_ops._LIBRARY)
    assert _ops._has_cuda_kernels("/nonexistent/_C.so") is False
