"""Bad input gets a clear error naming the argument."""

from __future__ import annotations

import pytest
import torch

import fusedkd
from cases import CASE_IDS, CASES, LABELLED, WITH_SECOND, WITH_TEMPERATURE, label_name


def _raises(match, fn, *a, **k):
    with pytest.raises((RuntimeError, ValueError, TypeError), match=match):
        fn(*a, **k)


@pytest.mark.parametrize("case", WITH_SECOND, ids=[c.name for c in WITH_SECOND])
def test_mismatched_shapes(case):
    args = case.inputs(4, 6)
    args[1] = args[1][:, :5].detach()
    _raises(r"(teacher_logits|weak_logits) has shape \[4, 5\] but student_logits has shape \[4, 6\]", case.call,
            case.fused, args)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_not_two_dimensional(case):
    # [N, C] or token logits [..., C]: one dimension is an error; [4, 2, 3] against a [4, 6] second input is
    # a shape mismatch naming both.
    args = case.inputs(4, 6)
    args[0] = args[0].detach().reshape(24)
    _raises(r"student_logits must have at least 2 dimensions \[\.\.\., C\], got 1", case.call, case.fused, args)
    args[0] = args[0].reshape(4, 2, 3)
    if case.has_teacher:
        _raises(r"has shape \[4, 6\] but student_logits has shape \[4, 2, 3\]", case.call, case.fused, args)
    else:  # teacher-free: the labels [4] do not match the leading shape [4, 2]
        _raises(r"must have the logits' leading shape \[4, 2\], got \[4\]", case.call, case.fused, args)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_integer_logits(case):
    args = case.inputs(4, 6, requires_grad=False)
    args[0] = torch.zeros(4, 6, dtype=torch.int64)
    _raises(r"student_logits must be float32, float16, bfloat16 or float64, got int64", case.call, case.fused, args)


@pytest.mark.parametrize("case", WITH_TEMPERATURE, ids=[c.name for c in WITH_TEMPERATURE])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_non_positive_or_non_finite_temperature(case, bad):
    key = "temperature"
    _raises(rf"{key} must be a positive finite number", case.call, case.fused, case.inputs(3, 5), **{key: bad})


@pytest.mark.parametrize("case", LABELLED, ids=[c.name for c in LABELLED])
@pytest.mark.parametrize("label", [6, -2])
def test_label_out_of_range(case, label):
    args = case.inputs(4, 6)
    y = args[-1].clone()
    y[2] = label
    args[-1] = y
    _raises(rf"{label_name(case)}: label {label} at row 2 is out of range \[0, 6\)", case.call, case.fused, args)


@pytest.mark.parametrize("case", LABELLED, ids=[c.name for c in LABELLED])
def test_target_shape_and_dtype(case):
    args = case.inputs(4, 6)
    args[-1] = args[-1][:3]
    _raises(rf"{label_name(case)} must have shape \[N\] = \[4\]", case.call, case.fused, args)
    args = case.inputs(4, 6)
    args[-1] = args[-1].to(torch.float32)
    _raises(rf"{label_name(case)} must hold integer class labels", case.call, case.fused, args)


NON_TARGET = [c for c in LABELLED if c.min_classes >= 2]  # a non-target part needs a class besides y


@pytest.mark.parametrize("case", NON_TARGET, ids=[c.name for c in NON_TARGET])
def test_one_class_is_an_error_for_non_target_losses(case):
    args = case.inputs(3, 1)
    _raises(r"at least 2 classes", case.call, case.fused, args)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_bad_reduction(case):
    _raises(r"reduction must be", case.call, case.fused, case.inputs(3, 5), reduction="mean_of_means")


@pytest.mark.parametrize("case", WITH_SECOND, ids=[c.name for c in WITH_SECOND])
def test_float64_mixed_with_float32(case):
    args = case.inputs(3, 5, dtype=torch.float64)
    args[1] = args[1].detach().float()
    _raises(r"float64 inputs must both be float64", case.call, case.fused, args)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to put one input on it")
@pytest.mark.parametrize("case", WITH_SECOND, ids=[c.name for c in WITH_SECOND])
def test_different_devices(case):
    args = case.inputs(3, 5)
    args[1] = args[1].detach().cuda()
    _raises(r"is on a different device than student_logits", case.call, case.fused, args)


def test_different_devices_via_meta():
    # Without a GPU, a meta tensor stands in for "another device".
    s = torch.randn(3, 5)
    t = torch.randn(3, 5, device="meta")
    _raises(r"teacher_logits is on a different device than student_logits|different device", fusedkd.kd_loss, s, t)


def test_non_tensor_argument():
    _raises(r"teacher_logits must be a torch.Tensor", fusedkd.kd_loss, torch.randn(2, 3), [[1.0, 2.0, 3.0]] * 2)
