"""tf-NKD (fusedkd.tfnkd_loss) and the fused cross-entropy it runs on (fusedkd.cross_entropy_loss).

Against the spec's worked example, fusedkd.reference.tfnkd_loss (the authors' formula) and
torch.nn.functional.cross_entropy, per dtype (cases.TOL), with ignored rows and token shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import fusedkd
from fusedkd import reference

from cases import TOL


def test_the_spec_example():
    s = torch.tensor([[1.0, 2.0, 0.5, -1.0], [0.3, -0.2, 1.5, 0.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 2])
    p = torch.softmax(s.detach(), 1)[torch.arange(2), y]
    w = p + 1 - p.mean()
    torch.testing.assert_close(w, torch.tensor([1.0118198330068395, 0.9881801669931605], dtype=torch.float64))
    for fn in (fusedkd.tfnkd_loss, reference.tfnkd_loss):
        assert abs(fn(s, y).item() - 0.5147281864963839) < 1e-14, fn


def _value_and_grad(fn, s, *args, **kw):
    s = s.detach().requires_grad_()
    out = fn(s, *args, **kw)
    (g,) = torch.autograd.grad(out.sum(), s)
    return out, g


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
def test_matches_the_reference(dtype, reduction):
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(3, 5, 37, generator=g, dtype=torch.float64) * 3).to(dtype)
    y = torch.randint(0, 37, (3, 5), generator=g)
    y[0, 2] = y[2, 4] = -100
    lf, gf = _value_and_grad(fusedkd.tfnkd_loss, s, y, reduction=reduction)
    lr, gr = _value_and_grad(reference.tfnkd_loss, s.double(), y, reduction=reduction)
    assert lf.shape == lr.shape == ((3, 5) if reduction == "none" else ())
    torch.testing.assert_close(lf.double(), lr, **TOL[dtype])
    torch.testing.assert_close(gf.double(), gr, **TOL[dtype])
    assert torch.all(gf[y == -100] == 0)


def test_gradient_is_cross_entropy_scaled_by_the_detached_weight():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(6, 10, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (6,), generator=g)
    _, gf = _value_and_grad(fusedkd.tfnkd_loss, s, y)
    q = torch.softmax(s, 1)
    p = q[torch.arange(6), y]
    w = p + 1 - p.mean()
    expected = w[:, None] * (q - F.one_hot(y, 10)) / 6
    torch.testing.assert_close(gf, expected, rtol=1e-12, atol=1e-14)


def test_soft_labels_take_the_top_two():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(4, 6, generator=g, dtype=torch.float64)
    lam = 0.7
    a, b = torch.tensor([0, 2, 5, 1]), torch.tensor([3, 2, 0, 4])
    soft = lam * F.one_hot(a, 6).double() + (1 - lam) * F.one_hot(b, 6).double()
    out = fusedkd.tfnkd_loss(s, soft)
    log_p = torch.log_softmax(s, 1)
    value, label = soft.sort(1, descending=True)
    expected = 0.0
    for k in (0, 1):
        lp = log_p.gather(1, label[:, k:k + 1]).squeeze(1)
        p = lp.exp()
        w = torch.where(value[:, k] != 0, p + value[:, k] - p.mean(), torch.zeros_like(p))
        expected = expected - (w * lp).mean()
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-14)


def test_edge_cases():
    assert fusedkd.tfnkd_loss(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long)).item() == 0.0
    s = torch.randn(3, 5, requires_grad=True)
    out = fusedkd.tfnkd_loss(s, torch.full((3,), -100))
    out.backward()
    assert out.item() == 0.0 and torch.all(s.grad == 0)
    s = torch.randn(3, 5)
    s[1, 2] = float("nan")
    assert torch.isnan(fusedkd.tfnkd_loss(s, torch.tensor([0, 1, 2])))  # a batch statistic: NaN everywhere
    with pytest.raises(RuntimeError, match="target: label 5 at row 1 is out of range"):
        fusedkd.tfnkd_loss(torch.randn(3, 5), torch.tensor([0, 5, 1]))


def test_compile_and_module():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(8, 20, generator=g, requires_grad=True)
    y = torch.randint(0, 20, (8,), generator=g)
    compiled = torch.compile(fusedkd.tfnkd_loss, fullgraph=True)
    out = compiled(s, y)
    out.backward()
    torch.testing.assert_close(out, fusedkd.tfnkd_loss(s.detach(), y))
    torch.testing.assert_close(fusedkd.TfNKDLoss(reduction="sum")(s, y), fusedkd.tfnkd_loss(s, y, reduction="sum"))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_cross_entropy_matches_torch(dtype):
    g = torch.Generator().manual_seed(4)
    s = (torch.randn(9, 300, generator=g, dtype=torch.float64) * 4).to(dtype)
    y = torch.randint(0, 300, (9,), generator=g)
    y[3] = -100
    lf, gf = _value_and_grad(fusedkd.cross_entropy_loss, s, y)
    lt, gt = _value_and_grad(F.cross_entropy, s.double(), y)  # "mean" over the rows that count
    torch.testing.assert_close(lf.double(), lt, **TOL[dtype])
    torch.testing.assert_close(gf.double(), gt, **TOL[dtype])
    # the target's gradient p_y − 1 stays exact as p_y → 1 (expm1, not 1 − p)
    s = torch.tensor([[30.0, 0.0, 0.0]], dtype=torch.float32, requires_grad=True)
    fusedkd.cross_entropy_loss(s, torch.tensor([0])).backward()
    assert s.grad[0, 0].item() == pytest.approx(-2 * torch.exp(torch.tensor(-30.0, dtype=torch.float64)).item(), rel=1e-5)
