"""The op layer follows the registry: every loss declared in C++ (include/fusedkd/registry.hpp) has its
schema, public function, module, reference and test cases, and the schemas the descriptors generate
are the ones the ops had when they were written by hand. Plus the proof loss (reverse KL) itself."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

import fusedkd
from fusedkd import reference
from fusedkd._ops import OP_ARGS, ops
from fusedkd._specs import LOSS_OPS

from cases import CASES, SPEC_OF

# The schemas as they were written by hand in bindings/library.cpp before the descriptors generated
# them (commit 0253c2d): generation must not change them.
HAND_WRITTEN = {
    "kd": "fusedkd::kd(Tensor student, Tensor teacher, float temperature, bool logit_standardization, str reduction, "
          "bool compute_grad, bool grad_private=False) -> (Tensor loss, Tensor grad_student)",
    "dkd": "fusedkd::dkd(Tensor student, Tensor teacher, Tensor target, float alpha, float beta, float temperature, "
           "bool logit_standardization, str reduction, int ignore_index, bool compute_grad, bool grad_private=False) "
           "-> (Tensor loss, Tensor grad_student)",
    "nkd": "fusedkd::nkd(Tensor student, Tensor teacher, Tensor target, float temperature, float gamma, str reduction, "
           "int ignore_index, bool compute_grad, bool grad_private=False) -> (Tensor loss, Tensor grad_student)",
    "rld": "fusedkd::rld(Tensor student, Tensor teacher, Tensor target, float alpha, float beta, float temperature, "
           "float alpha_temperature, bool logit_standardization, str reduction, int ignore_index, bool compute_grad, "
           "bool grad_private=False) -> (Tensor loss, Tensor grad_student)",
    "uskd": "fusedkd::uskd(Tensor student, Tensor weak, Tensor target, float alpha, float beta, float mu, "
            "str reduction, int ignore_index, bool compute_grad, bool grad_private=False) "
            "-> (Tensor loss, Tensor grad_student, Tensor grad_weak)",
}


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_generated_schema_equals_the_hand_written_one(name):
    assert str(getattr(ops, name).default._schema) == HAND_WRITTEN[name]


def test_reverse_kl_schema_has_optional_labels():
    schema = str(ops.reverse_kl.default._schema)
    assert schema == ("fusedkd::reverse_kl(Tensor student, Tensor teacher, Tensor? labels, float temperature, "
                      "bool temperature_squared, float softcap, "
                      "str reduction, int ignore_index, bool compute_grad, bool grad_private=False) "
                      "-> (Tensor loss, Tensor grad_student)")
    assert OP_ARGS["reverse_kl"].labels == "labels" and OP_ARGS["reverse_kl"].labels_optional


@pytest.mark.parametrize("spec", LOSS_OPS, ids=lambda s: s.name)
def test_every_op_has_its_function_module_reference_and_cases(spec):
    assert hasattr(ops, spec.name), f"fusedkd::{spec.name} is not registered (registry.hpp)"
    assert spec.function in fusedkd.__all__ and spec.module in fusedkd.__all__
    assert callable(getattr(reference, spec.reference))
    assert any(SPEC_OF[c.name] is spec for c in CASES) or spec.name in OWN_TESTS, \
        f"no test case for {spec.name} in tests/python/cases.py"


# Ops whose inputs the generic grid of cases.py cannot build (a sparse teacher), each with its own module.
OWN_TESTS = {"topk_kd": "tests/python/test_topk_kd.py"}


def test_ops_with_their_own_tests_have_them():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    for name, path in OWN_TESTS.items():
        assert (root / path).is_file(), f"{name}: {path} is missing"


@pytest.mark.parametrize("spec", LOSS_OPS, ids=lambda s: s.name)
def test_function_and_module_take_the_schema_parameters(spec):
    args = OP_ARGS[spec.name]
    wanted = {name for name, _ in args.params} | {"reduction"} | ({"ignore_index"} if args.labels else set())
    fn_params = set(inspect.signature(getattr(fusedkd, spec.function)).parameters)
    assert wanted <= fn_params, wanted - fn_params
    module = getattr(fusedkd, spec.module)
    assert set(module._fields) == wanted
    ref_params = set(inspect.signature(getattr(reference, spec.reference)).parameters)
    assert wanted <= ref_params, wanted - ref_params


@pytest.mark.parametrize("spec", LOSS_OPS, ids=lambda s: s.name)
def test_function_defaults_match_the_module_and_reference(spec):
    fn = inspect.signature(getattr(fusedkd, spec.function)).parameters
    mod = inspect.signature(getattr(fusedkd, spec.module)).parameters
    ref = inspect.signature(getattr(reference, spec.reference)).parameters
    for name in getattr(fusedkd, spec.module)._fields:
        assert fn[name].default == mod[name].default == ref[name].default, name


# ----------------------------------------------------------------------------- the proof loss: reverse KL


def _reverse_kl_f64(s, t, tau):
    log_q = torch.log_softmax(s.double() / tau, 1)
    log_p = torch.log_softmax(t.double() / tau, 1)
    q = log_q.exp()
    return torch.where(q > 0, q * (log_q - log_p), 0.0).sum(1)  # q = 0 (s = −inf): the limit 0


@pytest.mark.parametrize("tau", [1.0, 2.0, 0.5])
def test_reverse_kl_matches_the_definition_in_float64(tau):
    g = torch.Generator().manual_seed(3)
    s = torch.randn(7, 33, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(7, 33, generator=g, dtype=torch.float64)
    y = torch.tensor([0, -100, 5, 7, -100, 32, 1])
    out = fusedkd.reverse_kl_loss(s, t, y, temperature=tau)
    keep = y != -100
    expected = _reverse_kl_f64(s, t, tau)[keep].sum() / keep.sum()
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-14)
    (g_fused,) = torch.autograd.grad(out, s)
    (g_ref,) = torch.autograd.grad(expected, s)
    torch.testing.assert_close(g_fused, g_ref, rtol=1e-10, atol=1e-14)
    assert torch.all(g_fused[~keep] == 0)


def test_reverse_kl_without_labels_counts_every_row():
    g = torch.Generator().manual_seed(4)
    s, t = torch.randn(5, 9, generator=g), torch.randn(5, 9, generator=g)
    torch.testing.assert_close(fusedkd.reverse_kl_loss(s, t), _reverse_kl_f64(s, t, 1.0).mean().float())
    torch.testing.assert_close(fusedkd.reverse_kl_loss(s, t, torch.arange(5)), fusedkd.reverse_kl_loss(s, t))
    assert fusedkd.reverse_kl_loss(s, t, torch.full((5,), -100)).item() == 0.0  # every row ignored: 0


def test_reverse_kl_is_not_forward_kl():
    g = torch.Generator().manual_seed(5)
    s, t = torch.randn(4, 6, generator=g) * 3, torch.randn(4, 6, generator=g) * 3
    forward = fusedkd.kd_loss(s, t, temperature=1.0)
    assert not torch.allclose(fusedkd.reverse_kl_loss(s, t), forward)
    torch.testing.assert_close(fusedkd.reverse_kl_loss(t, s), forward)  # KL(q‖p) with the roles swapped


@pytest.mark.parametrize("C", [5, 13, 300])  # the scalar rows (C < 8) and the SIMD lanes
def test_reverse_kl_minus_inf(C):
    g = torch.Generator().manual_seed(6)
    s, t = torch.randn(2, C, generator=g), torch.randn(2, C, generator=g)
    s[0, 1] = -math.inf  # student probability 0: adds nothing, finite gradient (0 there)
    t[1, 2] = -math.inf  # teacher rules out a class the student keeps: +inf, NaN gradient row
    s.requires_grad_(True)
    out = fusedkd.reverse_kl_loss(s, t, reduction="none")
    assert math.isfinite(out[0].item()) and out[1].item() == math.inf
    torch.testing.assert_close(out[0], _reverse_kl_f64(s[:1].detach(), t[:1], 1.0)[0].float())
    (grad,) = torch.autograd.grad(out[0], s)
    assert torch.isfinite(grad[0]).all() and grad[0, 1] == 0
    out = fusedkd.reverse_kl_loss(s, t, reduction="none")
    (grad,) = torch.autograd.grad(out.sum(), s)
    assert torch.isnan(grad[1]).all()


def test_reverse_kl_module_and_bad_labels():
    s, t = torch.randn(3, 4), torch.randn(3, 4)
    assert "temperature=1.0" in repr(fusedkd.ReverseKLLoss())
    torch.testing.assert_close(fusedkd.ReverseKLLoss(temperature=2.0)(s, t), fusedkd.reverse_kl_loss(s, t, None, 2.0))
    with pytest.raises(RuntimeError, match=r"labels: label 9 at row 1 is out of range \[0, 4\)"):
        fusedkd.reverse_kl_loss(s, t, torch.tensor([0, 9, 1]))
    with pytest.raises(RuntimeError, match=r"labels must hold integer class labels"):
        fusedkd.reverse_kl_loss(s, t, torch.zeros(3))
    with pytest.raises(RuntimeError, match=r"temperature must be a positive finite number, got 0"):
        fusedkd.reverse_kl_loss(s, t, temperature=0.0)
