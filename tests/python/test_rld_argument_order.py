"""RLD, KD and DKD take the authors' positional order (zju-SWJ/RLD ``rld_loss(logits_student, logits_teacher,
target, alpha, beta, temperature, logit_stand, alpha_temperature)``, ``kd_loss(logits_student, logits_teacher,
temperature, logit_stand)``, ``dkd_loss(logits_student, logits_teacher, target, alpha, beta, temperature,
logit_stand)``), so a positional drop-in gives their loss."""

from __future__ import annotations

import inspect

import pytest
import torch

import fusedkd
from fusedkd import reference

AUTHORS_ORDER = ["alpha", "beta", "temperature", "logit_standardization", "alpha_temperature"]


@pytest.mark.parametrize("fn", [fusedkd.rld_loss, reference.rld_loss], ids=["fused", "reference"])
def test_signature_has_the_authors_positional_order(fn):
    names = list(inspect.signature(fn).parameters)
    assert names[3:8] == AUTHORS_ORDER, names


def test_module_signature_has_the_authors_order():
    names = list(inspect.signature(fusedkd.RLDLoss).parameters)
    assert names[:5] == AUTHORS_ORDER, names


@pytest.mark.parametrize("fn", [fusedkd.rld_loss, reference.rld_loss], ids=["fused", "reference"])
def test_positional_call_of_the_logit_stand_recipe(fn):
    # The --logit-stand recipe called as the authors' trainer does: positionally, the flag before α_τ.
    g = torch.Generator().manual_seed(4)
    s = torch.randn(6, 10, generator=g, dtype=torch.float64) * 3
    t = torch.randn(6, 10, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (6,), generator=g)
    positional = fn(s, t, y, 1.0, 8.0, 2.0, True, 3.0)
    keywords = fn(s, t, y, alpha=1.0, beta=8.0, temperature=2.0, logit_standardization=True, alpha_temperature=3.0)
    torch.testing.assert_close(positional, keywords, rtol=0, atol=0)
    swapped = fn(s, t, y, alpha=1.0, beta=8.0, temperature=2.0, logit_standardization=False, alpha_temperature=3.0)
    assert not torch.allclose(positional, swapped)  # the flag matters, so the test would see a swap


def test_module_positional_order():
    g = torch.Generator().manual_seed(5)
    s, t = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    y = torch.randint(0, 7, (5,), generator=g)
    m = fusedkd.RLDLoss(1.0, 8.0, 2.0, True, 3.0)
    assert m.logit_standardization is True and m.alpha_temperature == 3.0
    expected = fusedkd.rld_loss(s, t, y, temperature=2.0, logit_standardization=True, alpha_temperature=3.0)
    torch.testing.assert_close(m(s, t, y), expected, rtol=0, atol=0)


@pytest.mark.parametrize("fn", [fusedkd.kd_loss, reference.kd_loss], ids=["fused", "reference"])
def test_kd_positional_logit_stand(fn):
    assert list(inspect.signature(fn).parameters)[2:4] == ["temperature", "logit_standardization"]
    g = torch.Generator().manual_seed(6)
    s = torch.randn(6, 10, generator=g, dtype=torch.float64) * 3
    t = torch.randn(6, 10, generator=g, dtype=torch.float64) * 3
    positional = fn(s, t, 2.0, True)
    std = reference._standardize
    torch.testing.assert_close(positional, reference.kd_loss(std(s), std(t), 2.0), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(positional, fn(s, t, 2.0, False))


@pytest.mark.parametrize("fn", [fusedkd.dkd_loss, reference.dkd_loss], ids=["fused", "reference"])
def test_dkd_positional_logit_stand(fn):
    assert list(inspect.signature(fn).parameters)[3:7] == ["alpha", "beta", "temperature", "logit_standardization"]
    g = torch.Generator().manual_seed(7)
    s = torch.randn(6, 10, generator=g, dtype=torch.float64) * 3
    t = torch.randn(6, 10, generator=g, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (6,), generator=g)
    positional = fn(s, t, y, 1.0, 8.0, 2.0, True)
    std = reference._standardize
    torch.testing.assert_close(positional, reference.dkd_loss(std(s), std(t), y, 1.0, 8.0, 2.0), rtol=1e-10,
                               atol=1e-12)
    assert not torch.allclose(positional, fn(s, t, y, 1.0, 8.0, 2.0, False))
