"""The private torch APIs fusedkd uses, in one place: why each is used, and what happens without it.

One fusedkd wheel loads under every torch from 2.10 up, and a private API may change or go in a later
torch. Each one below is looked up once, at import, and is None when this torch lacks it; the code
that uses it then takes its public path, which is slower but gives the same numbers
(tests/python/test_torch_internals.py runs the package with all of them removed).

================================================  ===============================================  =====================================================
API                                               used for                                         without it
================================================  ===============================================  =====================================================
``torch._C._len_torch_dispatch_stack``            plain-eager check (no dispatch mode: make_fx,     every call goes through the op's registered autograd
                                                  FakeTensorMode) and the CPU ``grad_output == 1``  (torch.library): slower on small batches
                                                  shortcut                                          (docs/performance.md, "What the torch ops pay")
``torch._C._is_torch_function_mode_enabled``      plain-eager check (no torch-function mode)        as above
``torch._C._functorch.peek_interpreter_stack``    plain-eager check (no functorch transform)        as above
``torch._C._AutoDispatchBelowAutograd``           the eager autograd.Function's forward straight    as above; backward scales through scale_grad_'s
                                                  to the kernel; backward's in-place scaling        Autograd kernel
``torch._C._functorch.get_interpreter_stack``,    fusedkd's clear error for torch.func.grad / jvp   torch's own error for an op without a functorch rule
``TransformType``
``torch._C._after_autograd_keyset``               scale_grad_'s Autograd kernel (refuses tensors    no Autograd kernel: torch's default for a mutating op
                                                  autograd tracks, as in-place ops do)
``OpOverload._schema``                            reading each op's schema once at import           required (no public accessor exists; torch.library's
                                                  (``_ops.OP_ARGS``)                                own registration reads it the same way)
================================================  ===============================================  =====================================================

``HAS_CUDA_KERNELS`` uses no private API: it asks the compiled library (``fusedkd_has_cuda_kernels``,
bindings/library.cpp) through ctypes.
"""

from __future__ import annotations

import torch


def _lookup(owner, *path):
    for name in path:
        owner = getattr(owner, name, None)
        if owner is None:
            return None
    return owner


len_torch_dispatch_stack = _lookup(torch._C, "_len_torch_dispatch_stack")
is_torch_function_mode_enabled = _lookup(torch._C, "_is_torch_function_mode_enabled")
peek_interpreter_stack = _lookup(torch._C, "_functorch", "peek_interpreter_stack")
get_interpreter_stack = _lookup(torch._C, "_functorch", "get_interpreter_stack")
transform_type = _lookup(torch._C, "_functorch", "TransformType")
AutoDispatchBelowAutograd = _lookup(torch._C, "_AutoDispatchBelowAutograd")
after_autograd_keyset = _lookup(torch._C, "_after_autograd_keyset")


def eager_bypass_available() -> bool:
    """Whether the plain-eager fast path can be used: every API its checks need is present."""
    return None not in (len_torch_dispatch_stack, is_torch_function_mode_enabled, peek_interpreter_stack,
                        AutoDispatchBelowAutograd)
