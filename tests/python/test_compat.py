"""fusedkd.compat: the authors' signatures, defaults and return conventions, checked against the
project's references (fusedkd.reference follows the authors' code) with the authors' defaults."""

from __future__ import annotations

import inspect
import sys
import types

import pytest
import torch

import fusedkd
from fusedkd import reference
from fusedkd.compat import cls_kd, mdistiller, rld

EMPTY = inspect.Parameter.empty


def _signature(fn):
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]


def _inputs(N=6, C=10, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(N, C, generator=g, dtype=torch.float64) * 3).to(dtype).requires_grad_(True)
    t = (torch.randn(N, C, generator=g, dtype=torch.float64) * 3).to(dtype)
    y = torch.randint(0, C, (N,), generator=g)
    return s, t, y


def _same(a, b, inputs, rtol=1e-10, atol=1e-12):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
    for x in inputs:
        (ga,) = torch.autograd.grad(a, x, retain_graph=True)
        (gb,) = torch.autograd.grad(b, x, retain_graph=True)
        torch.testing.assert_close(ga, gb, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- signatures (the authors')


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (cls_kd.KDLoss, [("name", EMPTY), ("use_this", EMPTY), ("temp", 4.0), ("alpha", 0.5)]),
        (cls_kd.DKDLoss, [("name", EMPTY), ("use_this", EMPTY), ("temp", 4.0), ("alpha", 1.0), ("beta", 6.0)]),
        (cls_kd.NKDLoss, [("name", EMPTY), ("use_this", EMPTY), ("temp", 1.0), ("gamma", 1.5)]),
        (cls_kd.USKDLoss, [("name", EMPTY), ("use_this", EMPTY), ("channel", None), ("alpha", 1.0), ("beta", 0.1),
                           ("mu", 0.005), ("num_classes", 1000)]),
        (mdistiller.kd_loss, [("logits_student", EMPTY), ("logits_teacher", EMPTY), ("temperature", EMPTY)]),
        (mdistiller.dkd_loss, [("logits_student", EMPTY), ("logits_teacher", EMPTY), ("target", EMPTY),
                               ("alpha", EMPTY), ("beta", EMPTY), ("temperature", EMPTY)]),
        (rld.rld_loss, [("logits_student_in", EMPTY), ("logits_teacher_in", EMPTY), ("target", EMPTY),
                        ("alpha", EMPTY), ("beta", EMPTY), ("temperature", EMPTY), ("logit_stand", EMPTY),
                        ("alpha_temperature", EMPTY)]),
        (rld.kd_loss, [("logits_student_in", EMPTY), ("logits_teacher_in", EMPTY), ("temperature", EMPTY),
                       ("logit_stand", EMPTY)]),
        (rld.dkd_loss, [("logits_student_in", EMPTY), ("logits_teacher_in", EMPTY), ("target", EMPTY),
                        ("alpha", EMPTY), ("beta", EMPTY), ("temperature", EMPTY), ("logit_stand", EMPTY)]),
    ],
    ids=lambda x: getattr(x, "__qualname__", "") if callable(x) else "",
)
def test_signatures_are_the_authors(fn, expected):
    assert _signature(fn) == expected


@pytest.mark.parametrize("cls", [cls_kd.DKDLoss, cls_kd.NKDLoss, cls_kd.KDLoss], ids=lambda c: c.__name__)
def test_cls_kd_forward_argument_names(cls):
    names = list(inspect.signature(cls.forward).parameters)[1:]
    assert names == (["logit_s", "logit_t"] if cls is cls_kd.KDLoss else ["logit_s", "logit_t", "gt_label"])


def test_cls_kd_uskd_forward_argument_names():
    assert list(inspect.signature(cls_kd.USKDLoss.forward).parameters)[1:] == ["fea_mid", "logit_s", "gt_label"]


# ----------------------------------------------------------------------------- cls_KD modules


def test_cls_kd_kd_returns_the_ce_weight_and_the_authors_cross_entropy():
    s, t, _ = _inputs()
    m = cls_kd.KDLoss("loss_kd", True)  # temp 4, alpha 0.5
    weight, loss = m(s, t)
    assert weight == 0.5
    # The authors' value: -α τ² mean_i Σ_j p_t log p_s (a cross-entropy, not a KL).
    T = 4.0
    expected = -0.5 * T**2 * (torch.softmax(t / T, 1) * torch.log_softmax(s / T, 1)).sum(1).mean()
    _same(loss, expected, [s])
    # Its gradient is α times the fused KD's.
    (g,) = torch.autograd.grad(loss, s)
    (g_kd,) = torch.autograd.grad(0.5 * fusedkd.kd_loss(s, t, 4.0), s)
    torch.testing.assert_close(g, g_kd, rtol=1e-12, atol=1e-15)


def test_cls_kd_kd_custom_arguments_and_fp32():
    s, t, _ = _inputs(dtype=torch.float32)
    weight, loss = cls_kd.KDLoss("kd", False, temp=2.0, alpha=0.9)(s, t)
    assert weight == pytest.approx(0.1)
    expected = -0.9 * 4.0 * (torch.softmax(t.double() / 2, 1) * torch.log_softmax(s.double() / 2, 1)).sum(1).mean()
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_cls_kd_dkd_default_beta_is_6():
    s, t, y = _inputs(seed=1)
    m = cls_kd.DKDLoss("loss_dkd", True)
    _same(m(s, t, y), reference.dkd_loss(s, t, y, alpha=1.0, beta=6.0, temperature=4.0), [s])
    _same(m(s, t, y.view(-1, 1)), reference.dkd_loss(s, t, y, beta=6.0), [s])  # [N, 1] labels as the authors'


def test_cls_kd_nkd_hard_and_soft_labels():
    s, t, y = _inputs(seed=2)
    m = cls_kd.NKDLoss("loss_nkd", True)
    _same(m(s, t, y), reference.nkd_loss(s, t, y, temperature=1.0, gamma=1.5), [s])
    soft = torch.softmax(torch.randn(6, 10, dtype=torch.float64), 1)
    _same(m(s, t, soft), reference.nkd_loss(s, t, soft), [s])
    m2 = cls_kd.NKDLoss("loss_nkd", True, temp=4.0, gamma=1.0)
    _same(m2(s, t, y), reference.nkd_loss(s, t, y, temperature=4.0, gamma=1.0), [s])


def test_cls_kd_uskd_owns_the_weak_head_and_matches_the_reference():
    torch.manual_seed(0)
    N, F, C = 6, 5, 10
    m = cls_kd.USKDLoss("loss_uskd", True, channel=F, num_classes=C).double()
    assert isinstance(m.fc, torch.nn.Linear) and m.fc.in_features == F and m.fc.out_features == C
    assert set(m.state_dict()) == {"fc.weight", "fc.bias"}  # the authors' checkpoint keys
    fea = torch.randn(N, F, dtype=torch.float64)
    s, _, y = _inputs(N, C, seed=3)
    loss = m(fea, s, y)
    expected = reference.uskd_loss(s, m.fc(fea), y, alpha=1.0, beta=0.1, mu=0.005)
    _same(loss, expected, [s, m.fc.weight])
    soft = torch.softmax(torch.randn(N, C, dtype=torch.float64) * 3, 1)
    _same(m(fea, s, soft), reference.uskd_loss(s, m.fc(fea), soft), [s, m.fc.weight])


def test_cls_kd_uskd_needs_channel_and_matching_classes():
    with pytest.raises(ValueError, match=r"channel .* is required"):
        cls_kd.USKDLoss("loss_uskd", True)
    m = cls_kd.USKDLoss("loss_uskd", True, channel=4)  # num_classes 1000 by default
    with pytest.raises((RuntimeError, ValueError), match=r"weak_logits has shape \[3, 1000\]"):
        m(torch.randn(3, 4), torch.randn(3, 10), torch.randint(0, 10, (3,)))


def test_cls_kd_arguments_are_validated():
    with pytest.raises(TypeError, match="temp must be a real number"):
        cls_kd.NKDLoss("loss_nkd", True, temp="1")
    with pytest.raises(TypeError, match="beta must be a real number"):
        cls_kd.DKDLoss("loss_dkd", True, beta=None)


def test_cls_kd_registers_into_mmengine_when_importable(monkeypatch):
    # mmengine is not installed here: a stand-in with the Registry calls the adapter uses.
    class Registry:
        def __init__(self):
            self.module_dict = {}

        def register_module(self, name=None, module=None, force=False):
            if name in self.module_dict and not force:
                raise KeyError(name)
            self.module_dict[name] = module

    MODELS = Registry()

    class Other:
        pass

    MODELS.module_dict["KDLoss"] = Other  # a name taken by someone else stays theirs
    mmengine = types.ModuleType("mmengine")
    registry = types.ModuleType("mmengine.registry")
    registry.MODELS = MODELS
    mmengine.registry = registry
    monkeypatch.setitem(sys.modules, "mmengine", mmengine)
    monkeypatch.setitem(sys.modules, "mmengine.registry", registry)
    with pytest.warns(UserWarning, match="has a KDLoss already"):
        names = cls_kd.register_with_mmengine()
    assert names == ["DKDLoss", "NKDLoss", "USKDLoss"]
    assert MODELS.module_dict["NKDLoss"] is cls_kd.NKDLoss and MODELS.module_dict["KDLoss"] is Other
    with pytest.warns(UserWarning, match="has a KDLoss already"):
        assert cls_kd.register_with_mmengine() == ["DKDLoss", "NKDLoss", "USKDLoss"]  # idempotent


def test_cls_kd_without_mmengine_registers_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "mmengine", None)  # import fails
    monkeypatch.setitem(sys.modules, "mmengine.registry", None)
    assert cls_kd.register_with_mmengine() == []


# ----------------------------------------------------------------------------- mdistiller


def test_mdistiller_keyword_call_sites():
    s, t, y = _inputs(seed=4)
    _same(mdistiller.kd_loss(logits_student=s, logits_teacher=t, temperature=4), reference.kd_loss(s, t, 4.0), [s])
    got = mdistiller.dkd_loss(logits_student=s, logits_teacher=t, target=y, alpha=1.0, beta=8.0, temperature=4.0)
    _same(got, reference.dkd_loss(s, t, y, 1.0, 8.0, 4.0), [s])
    _same(mdistiller.dkd_loss(s, t, y, 1.0, 0.5, 1.0), reference.dkd_loss(s, t, y, 1.0, 0.5, 1.0), [s])  # ImageNet


# ----------------------------------------------------------------------------- RLD repository


@pytest.mark.parametrize("stand", [False, True])
def test_rld_positional_call_site(stand):
    s, t, y = _inputs(seed=5)
    # RLD's trainer: rld_loss(s, t, target, ALPHA, BETA, T, LOGIT_STAND, ALPHA_T), positionally.
    got = rld.rld_loss(s, t, y, 1.0, 8.0, 2.0, stand, 3.0)
    expected = reference.rld_loss(s, t, y, alpha=1.0, beta=8.0, temperature=2.0, logit_standardization=stand,
                                  alpha_temperature=3.0)
    _same(got, expected, [s])


def test_rld_logit_stand_must_be_a_bool():
    s, t, y = _inputs()
    with pytest.raises(TypeError, match="logit_stand must be a bool"):
        rld.rld_loss(s, t, y, 1.0, 8.0, 4.0, "false", 1.0)


def test_rld_kd_and_dkd_without_standardization():
    s, t, y = _inputs(seed=6)
    _same(rld.kd_loss(s, t, 4.0, False), reference.kd_loss(s, t, 4.0), [s])
    _same(rld.dkd_loss(s, t, y, 1.0, 8.0, 4.0, False), reference.dkd_loss(s, t, y, 1.0, 8.0, 4.0), [s])


def test_rld_kd_and_dkd_with_standardization():
    s, t, y = _inputs(seed=7)
    std = reference._standardize  # RLD.py's normalize(): Bessel std, 1e-7
    _same(rld.kd_loss(s, t, 4.0, True), reference.kd_loss(std(s), std(t), 4.0), [s], rtol=1e-9, atol=1e-11)
    _same(rld.dkd_loss(s, t, y, 1.0, 8.0, 4.0, True), reference.dkd_loss(std(s), std(t), y, 1.0, 8.0, 4.0), [s],
          rtol=1e-9, atol=1e-11)
    with pytest.raises(TypeError, match="logit_stand must be a bool"):
        rld.kd_loss(s, t, 4.0, "true")
