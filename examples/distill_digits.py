"""The README's main job: real distillation runs on scikit-learn's bundled handwritten digits.

A teacher MLP is trained with cross-entropy; then small students are trained from the same
initialisation with each loss, using the reference trainers' recipes:

    CE     cross-entropy only
    KD     0.1·CE + 0.9·KD                    (mdistiller)
    DKD    CE + min(epoch/20, 1)·DKD           (mdistiller, warm-up)
    NKD    CE + NKD                            (cls_KD)
    USKD   CE + USKD, teacher-free             (cls_KD; weak head on the student's hidden feature)
    tf-NKD CE + tf-NKD, teacher-free           (cls_KD, the NKD paper's v1)
    RLD    CE + min(epoch/20, 1)·RLD           (zju-SWJ/RLD: CFG.RLD.CE_WEIGHT = 1, WARMUP = 20)

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
# One builder per loss: loss(logits, feature, y, teacher_logits, epoch, uskd_module). A loss appears
# only when fusedkd has its function (and, for the timing column, fusedkd.reference too).
RECIPES = {
    "CE": (None, lambda s, f, y, t, epoch, u: F.cross_entropy(s, y)),
    "KD": ("kd_loss", lambda s, f, y, t, epoch, u: 0.1 * F.cross_entropy(s, y) + 0.9 * fusedkd.kd_loss(s, t)),
    "DKD": ("dkd_loss", lambda s, f, y, t, epoch, u: F.cross_entropy(s, y) + min(epoch / 20, 1.0) * fusedkd.dkd_loss(s, t, y)),
    "NKD": ("nkd_loss", lambda s, f, y, t, epoch, u: F.cross_entropy(s, y) + fusedkd.nkd_loss(s, t, y)),
    "USKD": ("uskd_loss", lambda s, f, y, t, epoch, u: F.cross_entropy(s, y) + u(f, s, y)),  # teacher-free
    "tf-NKD": ("tfnkd_loss", lambda s, f, y, t, epoch, u: F.cross_entropy(s, y) + fusedkd.tfnkd_loss(s, y)),  # teacher-free
    "RLD": ("rld_loss", lambda s, f, y, t, epoch, u: F.cross_entropy(s, y) + min(epoch / 20, 1.0) * fusedkd.rld_loss(s, t, y)),
    # token-level reverse KL (TRL's beta = 1, no tau^2), used here on classes: CE + KL(student || teacher)
    "Reverse KL": ("reverse_kl_loss", lambda s, f, y, t, epoch, u: F.cross_entropy(s, y) + fusedkd.reverse_kl_loss(s, t, y)),
}
LOSSES = [name for name, (fn, _) in RECIPES.items() if fn is None or hasattr(fusedkd, fn)]
if "USKD" in LOSSES and not hasattr(fusedkd, "USKDLoss"):
    LOSSES.remove("USKD")


def train(model, loss_fn, x, y, teacher_logits, epochs, seed, uskd=None, batch=128, lr=0.05):
    params = list(model.parameters()) + (list(uskd.parameters()) if uskd is not None else [])
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        for k in range(0, x.shape[0], batch):
            idx = perm[k : k + batch]
            logits, feature = model(x[idx])
            t = teacher_logits[idx] if teacher_logits is not None else None
            loss = loss_fn(logits, feature, y[idx], t, epoch, uskd)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model


@torch.no_grad()
def accuracy(model, x, y) -> float:
    return (model(x)[0].argmax(1) == y).float().mean().item() * 100


def step_times(name: str, shape, repeats: int = 300) -> tuple[float, float]:
    """Median microseconds of forward+backward of the loss term alone: (fused, reference).

    The two are timed alternately, run by run, so that load from other processes hits both alike."""
    g = torch.Generator().manual_seed(0)
    s = torch.randn(*shape, generator=g).requires_grad_(True)
    t = torch.randn(*shape, generator=g)
    w = torch.randn(*shape, generator=g).requires_grad_(True)  # USKD's weak logits
    y = torch.randint(0, shape[1], (shape[0],), generator=g)
    calls = {
        "KD": lambda m: m.kd_loss(s, t),
        "DKD": lambda m: m.dkd_loss(s, t, y),
        "NKD": lambda m: m.nkd_loss(s, t, y),
        "USKD": lambda m: m.uskd_loss(s, w, y),
        "tf-NKD": lambda m: m.tfnkd_loss(s, y),
        "RLD": lambda m: m.rld_loss(s, t, y),
        "Reverse KL": lambda m: m.reverse_kl_loss(s, t, y),
    }
    times = {fusedkd: [], reference: []}
    for k in range(repeats + 20):
        for impl in times:
            t0 = time.perf_counter()
            calls[name](impl).backward()
            if k >= 20:  # the first 20 are warm-up
                times[impl].append(time.perf_counter() - t0)
    return statistics.median(times[fusedkd]) * 1e6, statistics.median(times[reference]) * 1e6


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
    teacher = train(MLP(256, depth=2), RECIPES["CE"][1], x_tr, y_tr, None, args.epochs, seed=0)
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
        # USKD's weak head: a linear layer on the student's hidden feature, owned by the loss module.
        uskd = fusedkd.USKDLoss(in_features=hidden, num_classes=NUM_CLASSES) if name == "USKD" else None
        train(student, RECIPES[name][1], x_tr, y_tr, teacher_logits, args.epochs, seed=seed, uskd=uskd)
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
        if name == "CE" or not hasattr(reference, RECIPES[name][0]):
            lines.append(f"| {name} | {acc} | — | — | — |")
            continue
        fused_us, ref_us = step_times(name, shape)
        lines.append(f"| {name} | {acc} | {fused_us:.1f} | {ref_us:.1f} | {ref_us / fused_us:.1f}× |")
    lines += ["", f"Loss step = forward+backward of the loss term on a [{shape[0]}, {shape[1]}] fp32 batch, "
              f"median of 300 runs alternating fused and reference, CPU, {torch.get_num_threads()} threads. Total run time {time.time() - start:.0f} s."]
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
