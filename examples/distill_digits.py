"""The README's main job: real distillation runs on scikit-learn's bundled handwritten digits.

A teacher MLP is trained with cross-entropy; then small students are trained from the same
initialisation with each loss, using the reference trainers' recipes:

    CE     cross-entropy only
    KD     0.1·CE + 0.9·KD                    (mdistiller)
    DKD    CE + min(epoch/20, 1)·DKD           (mdistiller, warm-up)
    NKD    CE + NKD                            (cls_KD)
    USKD   CE + USKD, teacher-free             (cls_KD; weak head on the student's hidden feature)
    RLD    CE + RLD                            (zju-SWJ/RLD)

It prints test accuracy per loss (mean ± std over seeds) and the time of one loss step
(forward + backward of the loss alone, on the training batch shape), fused vs the pure-PyTorch
reference in ``fusedkd.reference``. Everything is seeded, so the table is reproducible.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from tqdm import tqdm

import fusedkd
from fusedkd import reference

torch.set_num_threads(2)
torch.use_deterministic_algorithms(True)

NUM_CLASSES = 10


def load_data(seed: int = 0):
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-3
    return (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te


class MLP(nn.Module):
    def __init__(self, hidden: int, depth: int = 1):
        super().__init__()
        layers, width = [], 64
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, NUM_CLASSES)

    def forward(self, x):
        feature = self.body(x)
        return self.head(feature), feature


# ----------------------------------------------------------------------------- losses per recipe
# Each builder returns loss(logits, feature, y, teacher_logits, epoch, impl) where impl is the
# module holding kd_loss/dkd_loss/... (fusedkd itself, or fusedkd.reference).


def recipe(name: str, hidden: int):
    if name == "CE":
        return lambda s, f, y, t, epoch, impl, extra: F.cross_entropy(s, y)
    if name == "KD":
        return lambda s, f, y, t, epoch, impl, extra: 0.1 * F.cross_entropy(s, y) + 0.9 * impl.kd_loss(s, t)
    if name == "DKD":
        return lambda s, f, y, t, epoch, impl, extra: F.cross_entropy(s, y) + min(epoch / 20, 1.0) * impl.dkd_loss(s, t, y)
    if name == "NKD":
        return lambda s, f, y, t, epoch, impl, extra: F.cross_entropy(s, y) + impl.nkd_loss(s, t, y)
    if name == "RLD":
        return lambda s, f, y, t, epoch, impl, extra: F.cross_entropy(s, y) + impl.rld_loss(s, t, y)
    if name == "USKD":
        return lambda s, f, y, t, epoch, impl, extra: F.cross_entropy(s, y) + impl.uskd_loss(s, extra(f), y)
    raise ValueError(name)


LOSSES = ["CE", "KD", "DKD", "NKD", "USKD", "RLD"]


def train(model, loss_fn, x, y, teacher_logits, epochs, seed, weak_head=None, batch=128, lr=0.05):
    params = list(model.parameters()) + (list(weak_head.parameters()) if weak_head else [])
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        for k in range(0, x.shape[0], batch):
            idx = perm[k : k + batch]
            logits, feature = model(x[idx])
            t = teacher_logits[idx] if teacher_logits is not None else None
            loss = loss_fn(logits, feature, y[idx], t, epoch, fusedkd, weak_head)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model


@torch.no_grad()
def accuracy(model, x, y) -> float:
    return (model(x)[0].argmax(1) == y).float().mean().item() * 100


def step_time(name: str, impl, shape, repeats: int = 200) -> float:
    """Median microseconds of forward+backward of the loss term alone."""
    g = torch.Generator().manual_seed(0)
    s = torch.randn(*shape, generator=g).requires_grad_(True)
    t = torch.randn(*shape, generator=g)
    w = torch.randn(*shape, generator=g).requires_grad_(True)
    y = torch.randint(0, shape[1], (shape[0],), generator=g)
    calls = {
        "KD": lambda: impl.kd_loss(s, t),
        "DKD": lambda: impl.dkd_loss(s, t, y),
        "NKD": lambda: impl.nkd_loss(s, t, y),
        "USKD": lambda: impl.uskd_loss(s, w, y),
        "RLD": lambda: impl.rld_loss(s, t, y),
    }
    fn = calls[name]
    for _ in range(20):
        fn().backward()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn().backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--out", help="also write the table (markdown) to this file")
    args = parser.parse_args()
    start = time.time()

    x_tr, y_tr, x_te, y_te = load_data()
    print(f"digits: {x_tr.shape[0]} train / {x_te.shape[0]} test samples, 64 features, 10 classes; torch {torch.__version__}")

    torch.manual_seed(0)
    teacher = train(MLP(256, depth=2), recipe("CE", 256), x_tr, y_tr, None, args.epochs, seed=0)
    teacher.eval()
    with torch.no_grad():
        teacher_logits = teacher(x_tr)[0]
    teacher_acc = accuracy(teacher, x_te, y_te)

    hidden = 16
    results = {name: [] for name in LOSSES}
    runs = [(name, seed) for seed in range(args.seeds) for name in LOSSES]
    for name, seed in tqdm(runs, desc="training students", unit="run"):
        torch.manual_seed(100 + seed)  # the same initial student for every loss
        student = MLP(hidden)
        weak_head = nn.Linear(hidden, NUM_CLASSES) if name == "USKD" else None
        train(student, recipe(name, hidden), x_tr, y_tr, teacher_logits, args.epochs, seed=seed, weak_head=weak_head)
        results[name].append(accuracy(student, x_te, y_te))

    shape = (128, NUM_CLASSES)
    lines = [
        f"Teacher MLP 64-256-256-10: {teacher_acc:.2f}% test accuracy. Students MLP 64-{hidden}-10, "
        f"{args.epochs} epochs, {args.seeds} seeds.",
        "",
        "| loss | test accuracy (%) | loss step fused (µs) | reference (µs) | speed-up |",
        "|---|---|---|---|---|",
    ]
    for name in LOSSES:
        accs = results[name]
        acc = f"{statistics.mean(accs):.2f} ± {statistics.pstdev(accs):.2f}"
        if name == "CE":
            lines.append(f"| {name} | {acc} | — | — | — |")
            continue
        fused_us, ref_us = step_time(name, fusedkd, shape), step_time(name, reference, shape)
        lines.append(f"| {name} | {acc} | {fused_us:.1f} | {ref_us:.1f} | {ref_us / fused_us:.1f}× |")
    lines += ["", f"Loss step = forward+backward of the loss term on a [{shape[0]}, {shape[1]}] fp32 batch, "
              f"median of 200 runs, CPU, {torch.get_num_threads()} threads. Total run time {time.time() - start:.0f} s."]
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
