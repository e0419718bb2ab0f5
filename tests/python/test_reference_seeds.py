"""fusedkd.reference NKD / USKD / RLD against float64 manual computations (plain numpy loops)
and their autograd gradients against the spec's closed forms. Needs only torch and numpy:
the reference module is loaded from its file, so the compiled ops are not required."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

_REF_PATH = Path(__file__).resolve().parents[2] / "python" / "fusedkd" / "reference.py"
_spec = importlib.util.spec_from_file_location("fusedkd_reference_standalone", _REF_PATH)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


def lse(x):
    m = np.max(x)
    return m + math.log(np.sum(np.exp(x - m)))


def softmax(x):
    return np.exp(x - lse(x))


def make(n, c, seed, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, c, generator=g, dtype=torch.float64) * scale
    t = torch.randn(n, c, generator=g, dtype=torch.float64) * scale
    y = torch.randint(0, c, (n,), generator=g)
    return s, t, y


def reduce(rows, counted, reduction):
    if reduction == "none":
        return np.array(rows)
    total = float(np.sum(rows))
    return total if reduction == "sum" else (total / counted if counted else 0.0)


# ------------------------------------------------------------------------------------------ NKD


def manual_nkd(s, t, y, tau, gamma):
    rows, grads = [], np.zeros_like(s)
    for i in range(s.shape[0]):
        if y[i] == -100:
            rows.append(0.0)
            continue
        yi = int(y[i])
        ps, pt = softmax(s[i]), softmax(t[i])
        nt = [j for j in range(s.shape[1]) if j != yi]
        qs, qt = softmax(s[i, nt] / tau), softmax(t[i, nt] / tau)
        rows.append(-pt[yi] * math.log(ps[yi]) - gamma * tau**2 * float(np.sum(qt * np.log(qs))))
        g = pt[yi] * ps
        g[yi] -= pt[yi]
        g[nt] += gamma * tau * (qs - qt)
        grads[i] = g
    return rows, grads


@pytest.mark.parametrize("tau,gamma", [(1.0, 1.5), (0.5, 1.0), (4.0, 2.0)])
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
def test_nkd(tau, gamma, reduction):
    s, t, y = make(6, 9, 1)
    y[2] = -100
    sv = s.clone().requires_grad_(True)
    out = ref.nkd_loss(sv, t, y, tau, gamma, reduction)
    rows, grads = manual_nkd(s.numpy(), t.numpy(), y.numpy(), tau, gamma)
    np.testing.assert_allclose(out.detach().numpy(), reduce(rows, 5, reduction), rtol=1e-12, atol=1e-12)
    (g,) = torch.autograd.grad(out.sum(), sv)
    scale = 1 / 5 if reduction == "batchmean" else 1.0
    np.testing.assert_allclose(g.numpy(), grads * scale, rtol=1e-10, atol=1e-12)


def test_nkd_soft_labels_use_argmax():
    s, t, y = make(5, 8, 2)
    soft = torch.nn.functional.one_hot(y, 8).double() * 0.7 + 0.3 / 8
    torch.testing.assert_close(ref.nkd_loss(s, t, soft), ref.nkd_loss(s, t, y), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------- USKD


def zipf_weights(score, drop):
    order = sorted(range(len(score)), key=lambda j: (-score[j], j))  # stable: ties to lower index
    z = np.zeros(len(score))
    for k, j in enumerate(order):
        z[j] = 1.0 / (k + 1)
    z[list(drop)] = 0.0
    return z / z.sum()


def manual_uskd(s, w, labels, values, valid, alpha, beta, mu, smooth_rows=None):
    """labels/values: lists of label lists per row (1 or 2 entries)."""
    n, c = s.shape
    u = np.array([[softmax(s[i])[l] ** 2 for l in labels[i]] for i in range(n)])
    mean_u = u[valid].mean(axis=0) if valid.any() else 0 * u[0]
    rows, gs, gw = [], np.zeros_like(s), np.zeros_like(w)
    for i in range(n):
        if not valid[i]:
            rows.append(0.0)
            continue
        ps, pw = softmax(s[i]), softmax(w[i])
        lps, lpw = np.log(ps), np.log(pw)
        soft = u[i] + np.array(values[i]) - mean_u
        soft = np.where(np.array(values[i]) == 0, 0.0, soft)
        T = -sum(soft[k] * lps[l] for k, l in enumerate(labels[i]))
        if smooth_rows is None:
            smooth = np.full(c, 0.1 / c)
            smooth[labels[i][0]] += 0.9
        else:
            smooth = smooth_rows[i] * 0.9 + 0.1 / c
        W = -mu * float(np.sum(smooth * lpw))
        score = pw / (1 - sum(pw[l] for l in labels[i]) + 1e-6) + lps / (1 - sum(lps[l] for l in labels[i]) + 1e-6)
        z = zipf_weights(score, labels[i])
        nt = [j for j in range(c) if j not in labels[i]]
        q = softmax(s[i, nt])
        NT = -float(np.sum(z[nt] * np.log(q)))
        rows.append(alpha * T + beta * NT + W)
        g = alpha * soft.sum() * ps
        for k, l in enumerate(labels[i]):
            g[l] -= alpha * soft[k]
        g[nt] += beta * (q - z[nt])
        gs[i] = g
        gw[i] = mu * (pw * smooth.sum() - smooth)
    return rows, gs, gw


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
@pytest.mark.parametrize("alpha,beta,mu", [(1.0, 0.1, 0.005), (0.7, 0.9, 0.3)])
def test_uskd_hard(reduction, alpha, beta, mu):
    s, w, y = make(7, 10, 3)
    y[4] = -100
    valid = (y != -100).numpy()
    sv, wv = s.clone().requires_grad_(True), w.clone().requires_grad_(True)
    out = ref.uskd_loss(sv, wv, y, alpha, beta, mu, reduction)
    labels = [[max(int(v), 0)] for v in y]  # ignored rows: any valid index, they do not count
    rows, gs, gw = manual_uskd(s.numpy(), w.numpy(), labels, [[1.0]] * 7, valid, alpha, beta, mu)
    np.testing.assert_allclose(out.detach().numpy(), reduce(rows, 6, reduction), rtol=1e-12, atol=1e-12)
    g_s, g_w = torch.autograd.grad(out.sum(), (sv, wv))
    scale = 1 / 6 if reduction == "batchmean" else 1.0
    np.testing.assert_allclose(g_s.numpy(), gs * scale, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_w.numpy(), gw * scale, rtol=1e-10, atol=1e-12)


def test_uskd_soft_labels_top2():
    s, w, y = make(6, 9, 4)
    g = torch.Generator().manual_seed(5)
    perm = torch.randint(0, 9, (6,), generator=g)
    lam = torch.rand(6, generator=g, dtype=torch.float64) * 0.5 + 0.25
    soft = torch.zeros(6, 9, dtype=torch.float64)
    soft[torch.arange(6), y] += lam
    soft[torch.arange(6), perm] += 1 - lam
    soft[0] = 0
    soft[0, 3] = 1.0  # a pure label in matrix form: second label has value 0
    values, labels = torch.sort(soft, descending=True, stable=True)
    labels, values = labels[:, :2].tolist(), values[:, :2].tolist()
    sv, wv = s.clone().requires_grad_(True), w.clone().requires_grad_(True)
    out = ref.uskd_loss(sv, wv, soft, reduction="sum", beta=0.5, mu=0.2)
    rows, gs, gw = manual_uskd(s.numpy(), w.numpy(), labels, values, np.ones(6, bool), 1.0, 0.5, 0.2, soft.numpy())
    np.testing.assert_allclose(out.item(), sum(rows), rtol=1e-12)
    g_s, g_w = torch.autograd.grad(out, (sv, wv))
    np.testing.assert_allclose(g_s.numpy(), gs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_w.numpy(), gw, rtol=1e-10, atol=1e-12)


def test_uskd_ties_lower_index_first():
    c = 6
    s = torch.zeros(1, c, dtype=torch.float64)
    s[0, 2] = 2.0
    w = torch.full((1, c), 0.3, dtype=torch.float64)
    sv = s.clone().requires_grad_(True)
    out = ref.uskd_loss(sv, w, torch.tensor([2]), alpha=0.0, beta=1.0, mu=0.0, reduction="sum")
    (g,) = torch.autograd.grad(out, sv)
    h = sum(1 / k for k in range(2, c + 1))
    z = [1 / 2 / h, 1 / 3 / h, 0, 1 / 4 / h, 1 / 5 / h, 1 / 6 / h]
    want = [1 / 5 - zj if j != 2 else 0.0 for j, zj in enumerate(z)]
    np.testing.assert_allclose(g[0].numpy(), want, atol=1e-14)


# ------------------------------------------------------------------------------------------ RLD


def manual_rld(s_raw, t_raw, y, alpha, beta, tau, at, stand):
    n, c = s_raw.shape
    rows, grads = [], np.zeros_like(s_raw)
    for i in range(n):
        if y[i] == -100:
            rows.append(0.0)
            continue
        yi = int(y[i])
        s, t = s_raw[i].copy(), t_raw[i].copy()
        if stand:
            mu, sd = s.mean(), s.std(ddof=1)
            s = (s - mu) / (1e-7 + sd)
            t = (t - t.mean()) / (1e-7 + t.std(ddof=1))
        m = int(np.argmax(t))
        ps, pt = softmax(s / at), softmax(t / at)
        bs = np.array([ps[yi], ps.sum() - ps[yi]])
        bs[1] = sum(ps[j] for j in range(c) if j != yi)
        bt = np.array([pt[m], sum(pt[j] for j in range(c) if j != m)])
        scd = at**2 * sum(bt[k] * (math.log(bt[k]) - math.log(bs[k])) for k in range(2) if bt[k] > 0)
        K = [j for j in range(c) if t[j] < t[yi]]
        mcd = 0.0
        g = np.zeros(c)
        if K:
            rs, rt = softmax(s[K] / tau), softmax(t[K] / tau)
            mcd = tau**2 * float(np.sum(rt * (np.log(rt) - np.log(rs))))
            g[K] += beta * tau * (rs - rt)
        rows.append(alpha * scd + beta * mcd)
        q = ps / bs[1]  # non-target softmax at α_τ (its entry at y is unused)
        gap = ps[yi] - pt[m]
        for j in range(c):  # y is never in K, so g[y] is only the SCD part
            g[j] += alpha * at * gap if j == yi else -alpha * at * gap * q[j]
        if stand:
            x = s_raw[i]
            mu, sd = x.mean(), x.std(ddof=1)
            den = sd + 1e-7
            g = (g - g.mean()) / den - np.sum(g * (x - mu)) * (x - mu) / (den**2 * (c - 1) * sd)
        grads[i] = g
    return rows, grads


@pytest.mark.parametrize("stand", [False, True])
@pytest.mark.parametrize("tau,at", [(4.0, 1.0), (1.0, 2.0), (0.5, 0.5)])
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "none"])
def test_rld(stand, tau, at, reduction):
    s, t, y = make(8, 7, 6)
    y[0] = int(torch.argmax(t[0]))  # teacher top is the label
    y[1] = int(torch.argmin(t[1]))  # label is the teacher's lowest class: K empty
    y[5] = -100
    sv = s.clone().requires_grad_(True)
    out = ref.rld_loss(sv, t, y, 1.0, 8.0, tau, stand, at, reduction)  # the authors' order (CHANGELOG: Unreleased)
    rows, grads = manual_rld(s.numpy(), t.numpy(), y.numpy(), 1.0, 8.0, tau, at, stand)
    np.testing.assert_allclose(out.detach().numpy(), reduce(rows, 7, reduction), rtol=1e-11, atol=1e-12)
    (g,) = torch.autograd.grad(out.sum(), sv)
    scale = 1 / 7 if reduction == "batchmean" else 1.0
    np.testing.assert_allclose(g.numpy(), grads * scale, rtol=1e-8, atol=1e-10)


def test_rld_empty_mask_is_zero():
    s, t, y = make(3, 5, 7)
    y = torch.argmin(t, dim=1)
    sv = s.clone().requires_grad_(True)
    out = ref.rld_loss(sv, t, y, alpha=0.0, reduction="none")
    assert torch.all(out == 0)
    (g,) = torch.autograd.grad(out.sum(), sv)
    assert torch.all(g == 0)
