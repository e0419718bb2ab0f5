"""Loads the compiled op library and registers what torch needs around it in Python:
fake (meta) kernels for torch.compile / opcheck, and autograd formulas.

The C++ ops compute the loss and ∂loss/∂student in one pass (for an upstream gradient of 1);
backward only scales that saved gradient by grad_output. The teacher receives no gradient. The
saved gradient has the logits' dtype, except for float16 logits, where it is float32: backward
multiplies it by grad_output and rounds to float16 once, so the gradient is correctly rounded for
any grad_output (a GradScaler's loss scale included), where an fp16 gradient stored at batchmean
scale would already have lost its small entries to fp16's subnormal range.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import warnings

import torch
import torch.autograd.forward_ad as _fwad

from . import _torch_internals as _ti
from ._specs import LOSS_OPS

_here = os.path.dirname(os.path.abspath(__file__))


def _find_library() -> str:
    """Path of the compiled op library fusedkd/_C*.so. Found through the import system (a regular
    install, PYTHONPATH=python with the library copied next to the sources, or an editable install,
    whose finder maps fusedkd._C to the build's copy in site-packages), without loading it as a
    Python module; then, as a fallback, next to this file."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(f"{__package__ or 'fusedkd'}._C")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and os.path.isfile(spec.origin):
        return spec.origin
    candidates = sorted(glob.glob(os.path.join(_here, "_C*.so")))
    if not candidates:
        raise ImportError(
            f"fusedkd: the compiled op library (fusedkd/_C.so) was not found (searched the import path and {_here}); "
            "build and install the package: `pip install --no-build-isolation .` (see docs/build.md)"
        )
    return candidates[0]


_LIBRARY = _find_library()
torch.ops.load_library(_LIBRARY)
ops = torch.ops.fusedkd


def _has_cuda_kernels(path: str) -> bool:
    """Whether the library was built with the CUDA kernels: it then exports fusedkd_has_cuda_kernels
    (bindings/library.cpp). Asked through ctypes, a public API (dlopen of the loaded library)."""
    import ctypes

    try:
        return bool(ctypes.CDLL(path).fusedkd_has_cuda_kernels())
    except (AttributeError, OSError):
        return False


HAS_CUDA_KERNELS = _has_cuda_kernels(_LIBRARY)


# ----------------------------------------------------------------------------- the ops' schemas


@dataclasses.dataclass(frozen=True)
class OpArgs:
    """What a loss op's schema (generated from its C++ descriptor) says about its arguments."""

    name: str
    arg_names: tuple  # every argument, in schema order
    n_tensors: int  # the leading tensor arguments: the logits and the labels
    second: str | None  # the second input: "teacher_logits", "weak_logits", "teacher_topk_logprobs"; None: teacher-free
    labels: str | None  # the labels' argument ("target" or "labels"), None without labels
    labels_optional: bool  # the labels may be None (Tensor?)
    params: tuple  # the hyper-parameters, ((name, "float" | "bool" | "int"), ...), in schema order
    differentiable: int  # the leading logits inputs that receive a gradient (grad_<input> outputs)


def _op_args(op_name: str) -> OpArgs:
    # OpOverload._schema: read once per op at import. torch has no public accessor for a registered
    # op's schema (torch.library's own fake/autograd registration reads it the same way).
    schema = getattr(ops, op_name).default._schema
    args = list(schema.arguments)
    names = tuple(a.name for a in args)
    types = [str(a.type) for a in args]
    n_tensors = 0
    while types[n_tensors] in ("Tensor", "Optional[Tensor]"):
        n_tensors += 1
    reduction = names.index("reduction")
    returns = [r.name for r in schema.returns]
    assert returns[0] == "loss" and all(r.startswith("grad_") for r in returns[1:]), schema
    assert [r[len("grad_"):] for r in returns[1:]] == list(names[: len(returns) - 1]), schema
    # The labels are the last tensor argument when it is named so (top-k KD has two teacher tensors first).
    has_labels = n_tensors >= 2 and names[n_tensors - 1] in ("target", "labels")
    teacher_free = n_tensors == 1 or (has_labels and n_tensors == 2)  # student (and labels) only
    return OpArgs(
        name=op_name,
        arg_names=names,
        n_tensors=n_tensors,
        second=None if teacher_free else names[1] if names[1].startswith("teacher_") else f"{names[1]}_logits",
        labels=names[n_tensors - 1] if has_labels else None,
        labels_optional=has_labels and types[n_tensors - 1] == "Optional[Tensor]",
        params=tuple((names[i], types[i]) for i in range(n_tensors, reduction)),
        differentiable=len(returns) - 1,
    )


OP_ARGS = {spec.name: _op_args(spec.name) for spec in LOSS_OPS}

# ----------------------------------------------------------------------------- fake kernels


def _fake_loss(student: torch.Tensor, reduction: str) -> torch.Tensor:
    dtype = _loss_dtype(student)
    shape = (student.shape[0],) if reduction == "none" else ()
    return student.new_empty(shape, dtype=dtype)


def _grad_dtype(like: torch.Tensor) -> torch.dtype:
    """The dtype the ops write ∂loss/∂like in (grad_t in include/fusedkd/numeric.hpp)."""
    return torch.float32 if like.dtype == torch.float16 else like.dtype


def _fake_grad(like: torch.Tensor, compute_grad: bool) -> torch.Tensor:
    return like.new_empty(like.shape if compute_grad else (0,), dtype=_grad_dtype(like))


# ----------------------------------------------------------------------------- autograd

_N_TENSORS: dict = {}  # op name -> number of leading tensor arguments


def _is_eager_cpu_one(grad_output: torch.Tensor) -> bool:
    """Whether grad_output is a plain CPU scalar equal to 1 (loss.backward() on the loss itself or on
    a sum of losses). Checked in eager mode only: reading the value is free on the CPU, but is a
    synchronization on a GPU, and has no value while torch.compile or make_fx trace."""
    return (
        grad_output.dim() == 0
        and grad_output.device.type == "cpu"
        and type(grad_output) is torch.Tensor
        and not torch.compiler.is_compiling()
        and _ti.len_torch_dispatch_stack is not None
        and _ti.len_torch_dispatch_stack() == 0
        and grad_output.item() == 1.0
    )


def _loss_dtype(grad: torch.Tensor) -> torch.dtype:
    return torch.float64 if grad.dtype == torch.float64 else torch.float32


def _scale(grad: torch.Tensor, grad_output: torch.Tensor, reduction: str) -> torch.Tensor:
    """∂loss/∂logits = the op's gradient (for an upstream gradient of 1) × grad_output."""
    if _is_eager_cpu_one(grad_output):
        # No scaled copy (a read and a write of [N, C]): the gradient itself is the answer.
        # AccumulateGrad adopts it as .grad only when nothing else holds it, else copies it.
        return grad
    if reduction == "none":
        return grad * grad_output.unsqueeze(1).to(grad.dtype)
    return grad * grad_output.to(grad.dtype)


def _has_inference(tensors) -> bool:
    # A plain loop, not any(<generator>): cheaper on every eager call (docs/performance.md).
    for x in tensors:
        if x is not None and x.is_inference():
            return True
    return False


def _make_autograd(op_name: str, n_grads: int):
    """Autograd for an op whose outputs are (loss, grad_0, ..., grad_{n_grads-1}) and whose
    first n_grads inputs are the differentiable logits.

    The forward's gradients are handed to the first backward, which owns them from then on: they
    are kept as a plain attribute, not as saved tensors, and are marked non-differentiable (no
    reference cycle through a grad_fn). A second backward through a retained graph finds them gone
    and recomputes them from the saved inputs.

    Backward multiplies them by grad_output. When the caller discards the op's gradient outputs
    (grad_private=True: the functional API), in place with fusedkd::scale_grad_, which reads
    grad_output where it lives (on a GPU in the kernel, no synchronization) and writes nothing when
    it is 1; under torch.compile the mutation of the saved gradient is re-inplaced, so a compiled
    step makes no extra pass either. Otherwise (a raw-op caller may keep them) out of place, see _scale.
    """
    op = getattr(ops, op_name).default
    names = OP_ARGS[op_name].arg_names
    n_inputs = len(names)
    reduction_pos, compute_grad_pos, private_pos = (
        names.index("reduction"), names.index("compute_grad"), names.index("grad_private"))
    # The schema's tensor arguments (the logits and labels; optional labels may be None) lead; the
    # rest are constants.
    n_tensors = OP_ARGS[op_name].n_tensors
    _N_TENSORS[op_name] = n_tensors

    def setup_context(ctx, inputs, output):
        ctx.reduction = inputs[reduction_pos]
        ctx.has_grad = inputs[compute_grad_pos]
        ctx.private = len(inputs) > private_pos and bool(inputs[private_pos])
        grads = output[1 : 1 + n_grads]
        ctx.input_dtypes = tuple(x.dtype for x in inputs[:n_grads])
        ctx.mark_non_differentiable(*grads)
        ctx.set_materialize_grads(False)  # else an [N, C] zero tensor per gradient output per backward
        ctx.grads = grads if ctx.has_grad else None
        ctx.constants = inputs[n_tensors:]
        tensors = inputs[:n_tensors]
        if _has_inference(tensors):
            # A teacher, weak logits or labels made under torch.inference_mode() cannot be saved for
            # backward; they are kept as plain references (they need no version check: outside
            # inference_mode they cannot be modified in place) for the recompute of a second backward.
            ctx.inference = tuple(x if x is not None and x.is_inference() else None for x in tensors)
            ctx.save_for_backward(*(None if x is not None and x.is_inference() else x for x in tensors))
        else:
            ctx.inference = None
            ctx.save_for_backward(*tensors)

    def recompute(ctx):
        saved = ctx.saved_tensors
        if ctx.inference is not None:
            saved = [x if x is not None else kept for x, kept in zip(saved, ctx.inference)]
        with torch.no_grad():
            return op(*saved, *ctx.constants)[1 : 1 + n_grads]

    def backward(ctx, grad_loss, *unused):
        if not ctx.has_grad:
            raise RuntimeError(
                f"fusedkd::{op_name} was called with compute_grad=False; call it through the fusedkd "
                "functional API (which sets compute_grad when an input requires grad)"
            )
        if grad_loss is None:  # the loss itself was not used downstream
            return (None,) * n_inputs
        if torch.is_grad_enabled() and not torch.compiler.is_compiling():  # backward(create_graph=True)
            warnings.warn(
                f"fusedkd::{op_name}: its gradient is computed in closed form and is not differentiable "
                "(first order only); with create_graph=True, second-order terms through this loss are zero",
                stacklevel=2,
            )
        grads, ctx.grads = ctx.grads, None
        if grads is None:  # handed to an earlier backward of this retained graph
            grads = recompute(ctx)
        if ctx.private:
            if not _is_eager_cpu_one(grad_loss):  # on the CPU, 1 is seen here without calling the op
                # Below autograd: the gradients need no graph, and this skips scale_grad_'s Python
                # Autograd kernel (its check that grad is not a tensor autograd tracks).
                if _ti.AutoDispatchBelowAutograd is not None:
                    with _ti.AutoDispatchBelowAutograd():
                        for g in grads:
                            _scale_grad(g, grad_loss.to(_loss_dtype(g)))
                else:  # through scale_grad_'s Autograd kernel (grads are not tracked: it scales them)
                    for g in grads:
                        _scale_grad(g, grad_loss.to(_loss_dtype(g)))
        else:
            grads = [_scale(g, grad_loss, ctx.reduction) for g in grads]
        # float16 logits: the float32 gradient, scaled, rounded to float16 once.
        grads = [g if g.dtype == d else g.to(d) for g, d in zip(grads, ctx.input_dtypes)]
        return tuple(grads) + (None,) * (n_inputs - n_grads)

    torch.library.register_autograd(f"fusedkd::{op_name}", backward, setup_context=setup_context)

    # The same formulas as a plain autograd.Function, for calls in plain eager mode (see call_op).
    # Old-style (forward takes ctx): a separate setup_context makes apply() slower (docs/performance.md).
    def forward(ctx, *inputs):
        with _ti.AutoDispatchBelowAutograd():  # straight to the CPU / CUDA kernel (only used when present)
            output = op(*inputs)
        setup_context(ctx, inputs, output)
        return output

    # grad_fn is named after the class: FusedKD<OP>Backward
    _EAGER[op_name] = type(
        f"FusedKD{op_name.upper()}",
        (torch.autograd.Function,),
        {"forward": staticmethod(forward), "backward": staticmethod(backward)},
    )


# op name -> its autograd.Function (_make_autograd)
_EAGER: dict = {}


def _plain_eager(tensors) -> bool:
    """No tracer, mode or transform is watching: not torch.compile / export, no dispatch or
    torch-function mode (make_fx, FakeTensorMode, ...), no functorch transform (vmap, grad), and
    only plain tensors."""
    return (
        _ti.eager_bypass_available()
        and not torch.compiler.is_compiling()
        and _ti.len_torch_dispatch_stack() == 0
        and not _ti.is_torch_function_mode_enabled()
        and _ti.peek_interpreter_stack() is None
        and all(type(x) is torch.Tensor or x is None for x in tensors)
    )


_UNSUPPORTED_TRANSFORMS = (
    (_ti.transform_type.Grad, _ti.transform_type.Jvp) if _ti.transform_type is not None else ())


def _unsupported_transform(op_name: str) -> RuntimeError:
    return RuntimeError(
        f"fusedkd.{op_name}_loss: forward-mode AD and functorch transforms other than vmap are not supported "
        "(torch.func.grad, torch.func.grad_and_value, torch.func.vjp, torch.func.jacrev, torch.func.jvp, "
        "torch.func.jacfwd, torch.func.hessian, torch.autograd.forward_ad): "
        "the op computes its gradient in closed form and has no functorch or forward-mode rule. For "
        "gradients use torch.autograd.grad or .backward(); torch.vmap is supported"
    )


def _check_transforms(op_name: str, tensors) -> None:
    """Raises for a functorch transform that would give a wrong answer or torch's setup_context
    message (grad/jacrev fail inside torch, jvp returned a zero tangent), and for dual tensors of
    torch.autograd.forward_ad. vmap and functionalize pass."""
    stack = _ti.get_interpreter_stack() if _ti.get_interpreter_stack is not None else None
    if stack and any(ci.key() in _UNSUPPORTED_TRANSFORMS for ci in stack):
        raise _unsupported_transform(op_name)
    if _fwad._current_level >= 0 and any(x is not None and _fwad.unpack_dual(x).tangent is not None for x in tensors):
        raise _unsupported_transform(op_name)


def call_op(op_name: str, *args):
    """Calls fusedkd::<op_name>(*args, grad_private=True) with autograd, for the functional API,
    which discards the gradient outputs (so backward scales them in place). In plain eager mode
    through an autograd.Function with the registered formulas, which skips the registered autograd's
    wrapper (its cost is most of a small batch's step: docs/performance.md). Everywhere else (torch.compile, export, make_fx, functorch, tensor
    subclasses) through the op itself, so tracers see fusedkd::<op_name> and its registered autograd
    and fake kernels."""
    n_tensors = _N_TENSORS[op_name]
    tensors = args[:n_tensors]
    if _plain_eager(tensors):
        if _fwad._current_level >= 0:  # inside a forward-AD dual_level: refuse dual inputs
            _check_transforms(op_name, tensors)
        return _EAGER[op_name].apply(*args, True)
    if not torch.compiler.is_compiling():
        _check_transforms(op_name, tensors)
    return getattr(ops, op_name)(*args, True)




@torch.library.register_fake("fusedkd::scale_grad_")
def _(grad, grad_output):
    return None


_scale_grad = ops.scale_grad_.default
_lib = torch.library.Library("fusedkd", "IMPL")  # kept alive: the registration lives as long as it does


_BELOW_AUTOGRAD = _ti.after_autograd_keyset


def _scale_grad_autograd(keyset, grad: torch.Tensor, grad_output: torch.Tensor) -> None:
    """scale_grad_ at the Autograd key: it mutates ``grad`` and has no derivative, so, as torch's
    in-place ops do, it refuses a tensor that autograd tracks (a leaf that requires grad, or a
    tensor in a graph) while grad mode is on; under no_grad it scales, as ``mul_`` would."""
    if grad.requires_grad and torch.is_grad_enabled():
        if grad.is_leaf:
            raise RuntimeError(
                "fusedkd::scale_grad_: grad is a leaf tensor that requires grad, and scale_grad_ changes it in "
                "place (torch's in-place ops refuse this too); call it under torch.no_grad() or on grad.detach()"
            )
        raise RuntimeError(
            "fusedkd::scale_grad_: grad requires grad, but scale_grad_ is an in-place op with no derivative; "
            "call it on a tensor outside the autograd graph (grad.detach(), or under torch.no_grad())"
        )
    _scale_grad.redispatch(keyset & _BELOW_AUTOGRAD, grad, grad_output)


if _BELOW_AUTOGRAD is not None:
    _lib.impl("scale_grad_", _scale_grad_autograd, "Autograd", with_keyset=True)


# ----------------------------------------------------------------------------- the loss ops


def _register_fake(op_name: str, n_grads: int) -> None:
    """Fake (meta) kernel of a loss op, from its schema: the loss (a scalar, or [N] for "none"; fp32,
    fp64 for fp64 logits) and one gradient per differentiable input (grad_t of its dtype, or [0]
    without compute_grad)."""
    names = OP_ARGS[op_name].arg_names
    reduction_pos, compute_grad_pos = names.index("reduction"), names.index("compute_grad")

    def fake(*args):
        student, compute_grad = args[0], args[compute_grad_pos]
        return (_fake_loss(student, args[reduction_pos]),) + tuple(_fake_grad(x, compute_grad) for x in args[:n_grads])

    torch.library.register_fake(f"fusedkd::{op_name}", fake)


for _op in LOSS_OPS:
    _register_fake(_op.name, OP_ARGS[_op.name].differentiable)
    _make_autograd(_op.name, n_grads=OP_ARGS[_op.name].differentiable)
