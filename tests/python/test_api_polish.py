"""The public Python API is typed (py.typed), documented (formula, every argument with its default,
the reference followed) and printable (extra_repr lists every argument)."""

from __future__ import annotations

import importlib.resources
import inspect
import typing

import pytest
import torch

import fusedkd
from fusedkd import compat, functional, reference
from fusedkd.compat import cls_kd, mdistiller, rld

FUNCTIONS = [getattr(functional, n) for n in functional.__all__]
PUBLIC_FUNCTIONS = (
    FUNCTIONS
    + [getattr(reference, n) for n in reference.__all__]
    + [getattr(mdistiller, n) for n in mdistiller.__all__]
    + [getattr(rld, n) for n in rld.__all__ if callable(getattr(rld, n))]
    + [cls_kd.register_with_mmengine]
)
MODULES = [getattr(fusedkd, n) for n in ("KDLoss", "DKDLoss", "NKDLoss", "RLDLoss", "USKDLoss")]
COMPAT_MODULES = [getattr(cls_kd, n) for n in ("KDLoss", "DKDLoss", "NKDLoss", "USKDLoss")]


def _qualname(x):
    return f"{x.__module__}.{x.__qualname__}"


def test_py_typed_marker_ships_in_the_package():
    assert importlib.resources.files("fusedkd").joinpath("py.typed").is_file()


@pytest.mark.parametrize("fn", PUBLIC_FUNCTIONS + [m.forward for m in MODULES + COMPAT_MODULES]
                         + [m.__init__ for m in MODULES + COMPAT_MODULES], ids=_qualname)
def test_every_public_function_and_forward_is_fully_annotated(fn):
    sig = inspect.signature(fn)
    missing = [p.name for p in sig.parameters.values() if p.name != "self" and p.annotation is inspect.Parameter.empty]
    assert not missing, f"{_qualname(fn)}: no annotation for {missing}"
    assert sig.return_annotation is not inspect.Signature.empty, f"{_qualname(fn)}: no return annotation"
    typing.get_type_hints(fn)  # the (string) annotations resolve


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
def test_functional_docstrings_give_formula_every_argument_default_and_reference(fn):
    doc = inspect.getdoc(fn)
    assert "ℓ_i" in doc, "the per-row formula"
    assert "Reference:" in doc
    assert "Returns:" in doc
    for p in inspect.signature(fn).parameters.values():
        assert f"{p.name}:" in doc, f"argument {p.name} not documented"
        if p.default is not inspect.Parameter.empty:
            documented = f"default {p.default}" in doc or f'``"{p.default}"`` (default' in doc
            assert documented, f"default of {p.name} ({p.default!r}) not documented"


@pytest.mark.parametrize("cls", MODULES + COMPAT_MODULES, ids=_qualname)
def test_module_docstrings_list_every_argument(cls):
    doc = inspect.getdoc(cls)
    for p in list(inspect.signature(cls).parameters.values()):
        assert p.name in doc, f"{cls.__name__}: argument {p.name} not documented"


def _build(cls):
    if cls is fusedkd.USKDLoss:
        return cls(in_features=3, num_classes=5, alpha=0.5, beta=0.25, mu=0.125, reduction="sum", ignore_index=7)
    if cls is cls_kd.USKDLoss:
        return cls("loss_uskd", True, channel=3, alpha=0.5, beta=0.25, mu=0.125, num_classes=5)
    if cls.__module__ == cls_kd.__name__:
        return cls("loss", True)
    params = [p for p in inspect.signature(cls).parameters.values()]
    kw = {}
    for i, p in enumerate(params):  # non-default values, so each is visible in the repr
        if p.name == "reduction":
            kw[p.name] = "sum"
        elif p.name == "ignore_index":
            kw[p.name] = 7
        elif p.name == "logit_standardization":
            kw[p.name] = True
        else:
            kw[p.name] = 0.5 + i
    return cls(**kw)


@pytest.mark.parametrize("cls", MODULES + COMPAT_MODULES, ids=_qualname)
def test_extra_repr_lists_every_argument(cls):
    m = _build(cls)
    text = repr(m)
    for p in inspect.signature(cls).parameters.values():
        if cls is fusedkd.USKDLoss and p.name in ("in_features", "num_classes"):
            assert "Linear(in_features=3, out_features=5" in text  # shown as the child fc
            continue
        if cls is cls_kd.USKDLoss and p.name == "num_classes":
            assert "out_features=5" in text
            continue
        value = getattr(m, p.name)
        assert f"{p.name}={value!r}" in text or f"{p.name}={value}" in text, f"{p.name} missing from {text}"


def test_compat_is_a_subpackage_of_the_installed_layout():
    assert compat.__name__ == "fusedkd.compat" and {"cls_kd", "mdistiller", "rld"} <= set(compat.__all__)


def test_reduction_default_is_batchmean_everywhere():
    for fn in FUNCTIONS:
        assert inspect.signature(fn).parameters["reduction"].default == "batchmean"
    x = torch.randn(2, 3)
    assert fusedkd.KDLoss().reduction == "batchmean" and fusedkd.KDLoss()(x, x).dim() == 0
