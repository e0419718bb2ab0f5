"""Argument validation shared by the functional API, the modules, the references and the compat
adapters: one rule per kind of argument, each error naming the argument.

Every check starts with an exact-type test for the common case (``type(x) is float``...), so a
valid call pays a few hundred nanoseconds; the slower paths (numpy scalars, one-element tensors)
run only for other types. Value checks that the C++ ops make themselves (a temperature must be
positive and finite, hyper-parameters finite) are not repeated here, except for the paths that
do not reach an op (USKD with soft labels), which call :func:`finite` / :func:`positive`.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = ["REDUCTIONS", "reduction", "real", "integer", "boolean", "finite", "positive"]

#: The reductions every loss accepts; ``"batchmean"`` is the default.
REDUCTIONS = ("batchmean", "sum", "none")
_REDUCTION_SET = frozenset(REDUCTIONS)

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _is_numpy_bool(x: object) -> bool:
    t = type(x)
    return t.__module__ == "numpy" and t.__name__ in ("bool", "bool_")


def reduction(value: object, name: str = "reduction") -> str:
    """The one rule for ``reduction``: ``"batchmean"``, ``"sum"`` or ``"none"``.

    ``"mean"`` is rejected on purpose: ``F.kl_div``'s ``"mean"`` averages over all ``N·C``
    elements, ``F.cross_entropy``'s over the rows, and accepting either meaning would give a
    silently different number to someone who expected the other. The per-row mean is
    ``"batchmean"``.
    """
    if type(value) is str and value in _REDUCTION_SET:
        return value
    if type(value) is str and value == "mean":
        raise ValueError(
            f"{name}='mean' is not accepted: these losses are summed over classes per row, and "
            "F.kl_div's 'mean' would divide by N*C where F.cross_entropy's divides by the rows. Use "
            "'batchmean' (sum over classes, mean over the rows that count: what F.cross_entropy's "
            "'mean' and mdistiller's .sum(1).mean() compute), 'sum' or 'none'"
        )
    raise ValueError(f"{name} must be one of 'batchmean', 'sum' or 'none', got {value!r}")


def _scalar_tensor(x: torch.Tensor, name: str, kind: str) -> torch.Tensor:
    if x.requires_grad:
        raise TypeError(
            f"{name} is a tensor that requires grad, but fusedkd computes no gradient for its "
            f"hyper-parameters; pass a {kind} (or {name}.detach() / {name}.item() if a constant is meant)"
        )
    if x.numel() != 1:
        raise TypeError(f"{name} must be a {kind} or a one-element tensor, got a tensor of shape {list(x.shape)}")
    return x


def real(x: object, name: str) -> float:
    """A real hyper-parameter (temperature, alpha, ...): a float or an int (not a bool), a numpy
    real scalar, or a one-element real tensor that does not require grad. Returns a float."""
    tx = type(x)
    if tx is float:
        return x  # type: ignore[return-value]
    if tx is int:
        try:
            return float(x)  # type: ignore[arg-type]
        except OverflowError:
            raise ValueError(f"{name} is too large for a float: {x}") from None
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or x.is_complex():
            raise TypeError(f"{name} must be a real number, got a {x.dtype} tensor")
        return float(_scalar_tensor(x, name, "number"))
    if isinstance(x, bool) or _is_numpy_bool(x):
        raise TypeError(f"{name} must be a real number, got bool {x!r}")
    if isinstance(x, numbers.Real):
        return float(x)
    raise TypeError(f"{name} must be a real number (float or int), got {tx.__name__} {x!r}")


def integer(x: object, name: str) -> int:
    """An integer argument (``ignore_index``): an int (not a bool) within int64, a numpy integer,
    or a one-element integer tensor that does not require grad. Floats are rejected, not truncated."""
    if type(x) is int:
        if _INT64_MIN <= x <= _INT64_MAX:  # type: ignore[operator]
            return x  # type: ignore[return-value]
        raise ValueError(f"{name} must fit in int64 ([-2**63, 2**63 - 1]), got {x}")
    if isinstance(x, torch.Tensor):
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"{name} must be an int, got a {x.dtype} tensor")
        return int(_scalar_tensor(x, name, "int"))
    if isinstance(x, bool) or _is_numpy_bool(x):
        raise TypeError(f"{name} must be an int, got bool {x!r}")
    if isinstance(x, numbers.Integral):
        return integer(int(x), name)
    raise TypeError(f"{name} must be an int, got {type(x).__name__} {x!r}")


def boolean(x: object, name: str) -> bool:
    """A flag (``logit_standardization``): a bool, a numpy bool, or a one-element bool tensor.
    Strings and numbers are rejected (``'false'`` would otherwise be true)."""
    if type(x) is bool:
        return x  # type: ignore[return-value]
    if isinstance(x, torch.Tensor):
        if x.dtype != torch.bool:
            raise TypeError(f"{name} must be a bool, got a {x.dtype} tensor")
        return bool(_scalar_tensor(x, name, "bool"))
    if _is_numpy_bool(x):
        return bool(x)
    raise TypeError(f"{name} must be a bool (True or False), got {type(x).__name__} {x!r}")


def finite(v: float, name: str) -> float:
    """The C++ ops' rule for alpha, beta, gamma, mu: finite (same message)."""
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def positive(v: float, name: str) -> float:
    """The C++ ops' rule for temperatures: positive and finite (same message)."""
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"{name} must be a positive finite number, got {v}")
    return v
