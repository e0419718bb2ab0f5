"""Argument validation: every hyper-parameter of every loss function and module is type-checked, and
the error names the argument; nothing is truncated or reinterpreted silently."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import fusedkd
from cases import CASE_IDS, CASES, LABELLED

from fusedkd._ops import OP_ARGS  # noqa: E402

from cases import SPEC_OF  # noqa: E402

# The real-valued hyper-parameters of each functional loss: its op's float parameters (the schema,
# generated from the C++ descriptor).
REALS = {c.fused.__name__: [n for n, kind in OP_ARGS[SPEC_OF[c.name].name].params if kind == "float"] for c in CASES}


def _reals(case):
    return REALS[case.fused.__name__]


def _has(case, name):
    return name in inspect.signature(case.fused).parameters


def _raises(exc, match, fn, *a, **k):
    with pytest.raises(exc, match=match):
        fn(*a, **k)


REAL_CASES = [(c, p) for c in CASES for p in _reals(c)]
REAL_IDS = [f"{c.name}-{p}" for c, p in REAL_CASES]


@pytest.mark.parametrize(("case", "param"), REAL_CASES, ids=REAL_IDS)
@pytest.mark.parametrize("bad", ["4", None, True, [4.0], 1j], ids=["str", "None", "bool", "list", "complex"])
def test_real_hyper_parameters_reject_non_numbers(case, param, bad):
    if param == "softcap" and bad is None:
        pytest.skip("softcap=None is valid (no cap): test_token_losses.py checks softcap's values")
    _raises(TypeError, rf"{param} must be a real number", case.call, case.fused, case.inputs(3, 5), **{param: bad})


@pytest.mark.parametrize(("case", "param"), REAL_CASES, ids=REAL_IDS)
def test_real_hyper_parameter_tensor_that_requires_grad_is_an_error(case, param):
    value = torch.tensor(2.0, requires_grad=True)
    _raises(TypeError, rf"{param} is a tensor that requires grad, but fusedkd computes no gradient", case.call,
            case.fused, case.inputs(3, 5), **{param: value})


@pytest.mark.parametrize(("case", "param"), REAL_CASES, ids=REAL_IDS)
def test_real_hyper_parameters_accept_ints_numpy_and_plain_tensors(case, param):
    args = case.inputs(3, 5, dtype=torch.float64)
    v = 1 if param == "beta" and case.fused is fusedkd.jsd_loss else 2  # JSD's β is in [0, 1]
    expected = case.call(case.fused, args, **{param: float(v)})
    for value in [v, np.float32(v), np.float64(v), np.int64(v), torch.tensor(float(v)), torch.tensor([float(v)])]:
        torch.testing.assert_close(case.call(case.fused, args, **{param: value}), expected, rtol=0, atol=0)
    _raises(TypeError, rf"{param} must be a number or a one-element tensor", case.call, case.fused, args,
            **{param: torch.tensor([2.0, 3.0])})


@pytest.mark.parametrize("case", LABELLED, ids=[c.name for c in LABELLED])
@pytest.mark.parametrize(
    ("bad", "exc", "match"),
    [
        (1.5, TypeError, r"ignore_index must be an int, got float 1\.5"),
        (2.0, TypeError, r"ignore_index must be an int, got float 2\.0"),
        (None, TypeError, r"ignore_index must be an int, got NoneType"),
        (True, TypeError, r"ignore_index must be an int, got bool"),
        ("1", TypeError, r"ignore_index must be an int, got str"),
        (2**70, ValueError, r"ignore_index must fit in int64"),
        (-(2**63) - 1, ValueError, r"ignore_index must fit in int64"),
        (torch.tensor(1.0), TypeError, r"ignore_index must be an int, got a torch.float32 tensor"),
    ],
    ids=["1.5", "2.0", "None", "bool", "str", "2**70", "-2**63-1", "float_tensor"],
)
def test_ignore_index_must_be_an_int64(case, bad, exc, match):
    _raises(exc, match, case.call, case.fused, case.inputs(4, 6), ignore_index=bad)


@pytest.mark.parametrize("case", LABELLED, ids=[c.name for c in LABELLED])
def test_ignore_index_accepts_numpy_and_integer_tensors_and_int64_limits(case):
    args = case.inputs(4, 6, dtype=torch.float64)
    args[-1] = args[-1].clone()
    args[-1][1] = 3
    expected = case.call(case.fused, args, ignore_index=3)
    for value in [np.int64(3), np.int32(3), torch.tensor(3)]:
        torch.testing.assert_close(case.call(case.fused, args, ignore_index=value), expected, rtol=0, atol=0)
    full = case.call(case.fused, args, ignore_index=-100)
    for limit in [2**63 - 1, -(2**63)]:
        torch.testing.assert_close(case.call(case.fused, args, ignore_index=limit), full, rtol=0, atol=0)


FLAG_CASES = [c for c in CASES if _has(c, "logit_standardization")]


@pytest.mark.parametrize("case", FLAG_CASES, ids=[c.name for c in FLAG_CASES])
@pytest.mark.parametrize("bad", ["false", "True", 1, 0, None, 1.0], ids=["'false'", "'True'", "1", "0", "None", "1.0"])
def test_logit_standardization_must_be_a_bool(case, bad):
    _raises(TypeError, r"logit_standardization must be a bool", case.call, case.fused, case.inputs(3, 5),
            logit_standardization=bad)


@pytest.mark.parametrize("case", FLAG_CASES, ids=[c.name for c in FLAG_CASES])
def test_logit_standardization_accepts_numpy_and_bool_tensors(case):
    args = case.inputs(3, 5, dtype=torch.float64)
    for flag in [False, True]:
        expected = case.call(case.fused, args, logit_standardization=flag)
        for value in [np.bool_(flag), torch.tensor(flag)]:
            torch.testing.assert_close(case.call(case.fused, args, logit_standardization=value), expected,
                                       rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reduction_mean_is_rejected_with_an_explanation(case):
    _raises(ValueError, r"reduction='mean' is not accepted.*'batchmean'", case.call, case.fused, case.inputs(3, 5),
            reduction="mean")


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("bad", [None, "BatchMean", 0], ids=["None", "case", "int"])
def test_reduction_must_be_one_of_three_strings(case, bad):
    _raises(ValueError, r"reduction must be one of 'batchmean', 'sum' or 'none'", case.call, case.fused,
            case.inputs(3, 5), reduction=bad)


def test_reference_reductions_follow_the_same_rule():
    s, t = torch.randn(3, 5), torch.randn(3, 5)
    _raises(ValueError, r"reduction='mean' is not accepted", fusedkd.reference.kd_loss, s, t, reduction="mean")
    _raises(ValueError, r"reduction must be one of", fusedkd.reference.kd_loss, s, t, reduction="avg")


# ----------------------------------------------------------------------------- modules

MODULES = [
    (fusedkd.KDLoss, {}, ["temperature"], False),
    (fusedkd.DKDLoss, {}, ["alpha", "beta", "temperature"], True),
    (fusedkd.NKDLoss, {}, ["temperature", "gamma"], True),
    (fusedkd.RLDLoss, {}, ["alpha", "beta", "temperature", "alpha_temperature"], True),
    (fusedkd.USKDLoss, dict(in_features=4, num_classes=5), ["alpha", "beta", "mu"], True),
]
MODULE_IDS = [m[0].__name__ for m in MODULES]


@pytest.mark.parametrize(("cls", "required", "reals", "labelled"), MODULES, ids=MODULE_IDS)
def test_modules_validate_their_arguments_at_construction(cls, required, reals, labelled):
    for p in reals:
        _raises(TypeError, rf"{p} must be a real number", cls, **required, **{p: "4"})
        _raises(TypeError, rf"{p} is a tensor that requires grad", cls, **required,
                **{p: torch.tensor(1.0, requires_grad=True)})
    _raises(ValueError, r"reduction='mean' is not accepted", cls, **required, reduction="mean")
    _raises(ValueError, r"reduction must be one of", cls, **required, reduction="avg")
    if labelled:
        _raises(TypeError, r"ignore_index must be an int, got float 1\.5", cls, **required, ignore_index=1.5)
        _raises(ValueError, r"ignore_index must fit in int64", cls, **required, ignore_index=2**70)
    if "logit_standardization" in inspect.signature(cls).parameters:
        _raises(TypeError, r"logit_standardization must be a bool", cls, **required, logit_standardization="false")


@pytest.mark.parametrize(("cls", "required", "reals", "labelled"), MODULES, ids=MODULE_IDS)
def test_modules_validate_attributes_changed_after_construction(cls, required, reals, labelled):
    m = cls(**required)
    setattr(m, reals[0], "4")
    x = torch.randn(3, 5)
    args = ([torch.randn(3, 4)] if cls is fusedkd.USKDLoss else []) + [x, torch.randn(3, 5)][: 1 if cls is
                                                                                              fusedkd.USKDLoss else 2]
    if labelled:
        args.append(torch.randint(0, 5, (3,)))
    _raises(TypeError, rf"{reals[0]} must be a real number", m, *args)


# ----------------------------------------------------------------------------- USKD with soft labels


def _soft(N=4, C=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(N, C, generator=g, requires_grad=True)
    w = torch.randn(N, C, generator=g, requires_grad=True)
    y = torch.softmax(torch.randn(N, C, generator=g), 1)
    return s, w, y


@pytest.mark.parametrize("param", ["alpha", "beta", "mu"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
def test_uskd_soft_labels_non_finite_hyper_parameters(param, bad):
    s, w, y = _soft()
    msg = rf"{param} must be finite, got {bad}"
    _raises((RuntimeError, ValueError), msg, fusedkd.uskd_loss, s, w, y.argmax(1), **{param: bad})  # hard: the op
    _raises(ValueError, msg, fusedkd.uskd_loss, s, w, y, **{param: bad})


def test_uskd_soft_labels_checks_match_the_hard_label_path():
    s, w, y = _soft()
    hard = y.argmax(1)
    bad_inputs = [
        ((s, w.detach().long(), None), r"weak_logits must be float32, float16, bfloat16 or float64, got int64"),
        ((s.detach().long(), w, None), r"student_logits must be float32, float16, bfloat16 or float64, got int64"),
        ((s[:, :5], w, None), r"weak_logits has shape \[4, 6\] but student_logits has shape \[4, 5\]"),
        ((s, w[:, :5], None), r"weak_logits has shape \[4, 5\] but student_logits has shape \[4, 6\]"),
        ((s.detach().reshape(24), w, None), r"student_logits must have at least 2 dimensions"),
        ((s, w.detach().double(), None), r"float64 inputs must both be float64"),
        ((s[:, :1], w[:, :1], "C1"), r"at least 2 classes"),
    ]
    for (a, b, kind), msg in bad_inputs:
        soft = torch.softmax(torch.randn(4, 1), 1) if kind == "C1" else y
        target = torch.zeros(4, dtype=torch.long) if kind == "C1" else hard
        _raises((RuntimeError, ValueError, TypeError), msg, fusedkd.uskd_loss, a, b, target)
        _raises((RuntimeError, ValueError, TypeError), msg, fusedkd.uskd_loss, a, b, soft)


def test_uskd_soft_labels_target_shape_and_arguments():
    s, w, y = _soft()
    _raises(ValueError, r"target as soft labels must have shape \[4, 6\], got \[4, 5\]", fusedkd.uskd_loss, s, w,
            y[:, :5])
    _raises(TypeError, r"ignore_index must be an int", fusedkd.uskd_loss, s, w, y, ignore_index=1.5)
    _raises(ValueError, r"reduction='mean' is not accepted", fusedkd.uskd_loss, s, w, y, reduction="mean")
    _raises(TypeError, r"mu must be a real number", fusedkd.uskd_loss, s, w, y, mu="0.1")


def test_uskd_soft_labels_valid_call_unchanged():
    s, w, y = _soft()
    torch.testing.assert_close(fusedkd.uskd_loss(s, w, y), fusedkd.reference.uskd_loss(s, w, y), rtol=0, atol=0)
