"""Errors raised by the C++ ops carry only their message: it starts with the name of the argument at
fault and holds no function name or source path of the machine that built the library (issue #15)."""

from __future__ import annotations

import re

import pytest
import torch

import fusedkd  # noqa: F401  (loads the op library)

ops = torch.ops.fusedkd


def _x(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype)


def _y(*labels, dtype=torch.int64):
    return torch.tensor(labels, dtype=dtype)


# (id, argument the message must start with, text it must contain, call)
CASES = [
    ("kd_no_class", "student_logits", "at least 1 class (C)",
     lambda: ops.kd(_x(2, 0), _x(2, 0), 4.0, False, "batchmean", True)),
    ("dkd_one_class", "student_logits", "at least 2 classes (C)",
     lambda: ops.dkd(_x(2, 1), _x(2, 1), _y(0, 0), 1.0, 8.0, 4.0, False, "batchmean", -100, True)),
    ("not_2d", "student_logits", "must be 2-D",
     lambda: ops.kd(_x(2, 3, 1), _x(2, 3), 4.0, False, "batchmean", True)),
    ("integer_logits", "student_logits", "must be float32",
     lambda: ops.kd(_x(2, 3, dtype=torch.int64), _x(2, 3), 4.0, False, "batchmean", True)),
    ("shape", "teacher_logits", "has shape [2, 4]",
     lambda: ops.kd(_x(2, 3), _x(2, 4), 4.0, False, "batchmean", True)),
    ("float64_mix", "teacher_logits", "float64 inputs must both be float64",
     lambda: ops.kd(_x(2, 3), _x(2, 3, dtype=torch.float64), 4.0, False, "batchmean", True)),
    ("target_dtype", "target", "integer class labels",
     lambda: ops.nkd(_x(2, 3), _x(2, 3), _x(2), 1.0, 1.5, "batchmean", -100, True)),
    ("target_shape", "target", "must have shape [N] = [2]",
     lambda: ops.dkd(_x(2, 3), _x(2, 3), _y(0, 1, 2), 1.0, 8.0, 4.0, False, "batchmean", -100, True)),
    ("label_range", "target", "label 7 at row 1 is out of range [0, 3)",
     lambda: ops.rld(_x(2, 3), _x(2, 3), _y(0, 7), 1.0, 2.0, 4.0, 4.0, False, "batchmean", -100, True)),
    ("label_range_int32", "target", "label -5 at row 0 is out of range",
     lambda: ops.uskd(_x(2, 3), _x(2, 3), _y(-5, 0, dtype=torch.int32), 1.0, 0.1, 0.005, "batchmean", -100, True)),
    ("temperature", "temperature", "must be a positive finite number",
     lambda: ops.kd(_x(2, 3), _x(2, 3), 0.0, False, "batchmean", True)),
    ("alpha_temperature", "alpha_temperature", "must be a positive finite number",
     lambda: ops.rld(_x(2, 3), _x(2, 3), _y(0, 1), 1.0, 2.0, 4.0, -1.0, False, "batchmean", -100, True)),
    ("alpha", "alpha", "must be finite",
     lambda: ops.dkd(_x(2, 3), _x(2, 3), _y(0, 1), float("nan"), 8.0, 4.0, False, "batchmean", -100, True)),
    ("reduction", "reduction", "must be 'batchmean', 'sum' or 'none'",
     lambda: ops.kd(_x(2, 3), _x(2, 3), 4.0, False, "avg", True)),
    ("weak_dtype", "weak_logits", "must have the dtype of student_logits",
     lambda: ops.uskd(_x(2, 3), _x(2, 3, dtype=torch.float16), _y(0, 1), 1.0, 0.1, 0.005, "batchmean", -100, True)),
    ("grad_dtype", "grad", "must be float32",
     lambda: ops.scale_grad_(_x(2, 3, dtype=torch.int32), _x())),
    ("grad_output_dtype", "grad_output", "the loss's dtype",
     lambda: ops.scale_grad_(_x(2, 3), _x(dtype=torch.float64))),
]


@pytest.mark.parametrize("argument, text, call", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_message_is_clean(argument, text, call):
    with pytest.raises(RuntimeError) as info:
        call()
    message = str(info.value)
    assert re.match(re.escape(argument) + r"[ :]", message), message  # the argument first: no "check_logits, " prefix
    assert text in message, message
    assert not re.search(r"[\\/]|\.(hpp|cpp|cu|h):\d+", message), f"source location in: {message}"
    assert "fusedkd: " not in message, message


def test_public_api_message_is_clean():
    with pytest.raises(RuntimeError) as info:
        fusedkd.dkd_loss(_x(2, 3), _x(2, 3), _y(0, 9))
    message = str(info.value)
    assert message.startswith("target: label 9 at row 1 is out of range"), message
    assert not re.search(r"[\\/]|\.(hpp|cpp):\d+", message), message
