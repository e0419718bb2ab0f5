"""The main job's token-level part: a character-level language model distilled on a text Python ships.

The text is the Python documentation bundled with the interpreter (``pydoc_data.topics``, what
``help()`` shows). A teacher GRU (hidden 256) is trained with next-character cross-entropy; then small
student GRUs (hidden 48) from the same initialisation with each token-level loss on ``[B, T, V]``
logits, ``ignore_index`` marking the padding of the last window:

    CE           next-character cross-entropy only (fusedkd.cross_entropy_loss)
    forward KL   CE + KL(teacher ‖ student)          (TRL generalized_jsd_loss, beta = 0)
    reverse KL   CE + KL(student ‖ teacher)          (beta = 1)
    JSD          CE + generalized JSD, beta = 0.5
    top-k KD     CE + top-k teacher KD, k = 8, ghost bucket (the teacher's top-8 log-probabilities only,
                 as an offline cache or a served teacher gives them; Megatron-LM topk_kl_div)
    forward KL, fused head   (with --fused-head) CE + forward KL again, computed by
                 fusedkd.FusedLinearDistillationLoss from the GRUs' hidden states and head weights (the
                 [B·T, V] logits are never built): the same objective, so the same accuracy up to rounding

It prints held-out next-character accuracy and bits per character per loss (mean over seeds) and the
time of one loss step (forward + backward of the loss alone on the training batch), fused vs the
pure-PyTorch reference in ``fusedkd.reference``. Seeded: the table is reproducible.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn

import fusedkd
from fusedkd import reference

torch.set_num_threads(2)

IGNORE = -100


def load_text(chars: int) -> str:
    from pydoc_data.topics import topics

    return "\n".join(topics[k] for k in sorted(topics))[:chars]


class CharData:
    """Characters seen at least `min_count` times get their own id; the rest share one."""

    def __init__(self, text: str, min_count: int = 20):
        counts: dict = {}
        for c in text:
            counts[c] = counts.get(c, 0) + 1
        vocab = sorted(c for c, n in counts.items() if n >= min_count)
        self.index = {c: i + 1 for i, c in enumerate(vocab)}  # 0: every rare character
        self.V = len(vocab) + 1
        ids = torch.tensor([self.index.get(c, 0) for c in text], dtype=torch.int64)
        cut = int(len(ids) * 0.9)
        self.train, self.test = ids[:cut], ids[cut:]

    def batch(self, ids, B, T, g):
        """B windows of T + 1 characters; the last window of the split may run past its end: padding,
        labels ignore_index there."""
        starts = torch.randint(0, len(ids) - T // 2, (B,), generator=g)
        pos = starts[:, None] + torch.arange(T + 1)
        x = ids[pos.clamp(max=len(ids) - 1)]
        y = torch.where(pos[:, 1:] < len(ids), x[:, 1:], torch.full_like(x[:, 1:], IGNORE))
        return x[:, :-1], y


class CharGRU(nn.Module):
    def __init__(self, V: int, hidden: int, embed: int = 32):
        super().__init__()
        self.embed = nn.Embedding(V, embed)
        self.rnn = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, V)

    def forward(self, x):  # [B, T] ids -> [B, T, V] logits
        return self.head(self.rnn(self.embed(x))[0])


def topk_teacher(t, k=8):
    lp, idx = torch.log_softmax(t.float(), -1).topk(k, dim=-1)
    return lp, idx


# loss(student_logits [B, T, V], teacher_logits, labels [B, T]) per recipe; CE is the fused cross-entropy.
def _ce(s, y):
    return fusedkd.cross_entropy_loss(s, y)


RECIPES = {
    "CE": lambda s, t, y: _ce(s, y),
    "forward KL": lambda s, t, y: _ce(s, y) + fusedkd.forward_kl_loss(s, t, y),
    "reverse KL": lambda s, t, y: _ce(s, y) + fusedkd.reverse_kl_loss(s, t, y),
    "JSD": lambda s, t, y: _ce(s, y) + fusedkd.jsd_loss(s, t, y, beta=0.5),
    "top-k KD": lambda s, t, y: _ce(s, y) + fusedkd.topk_kd_loss(s, *topk_teacher(t), y),
}


class HeadRecipe:
    """A recipe on the heads' inputs rather than the logits: fn(student, teacher, x, y) -> loss."""

    def __init__(self, fn):
        self.fn = fn


# forward KL + CE as above, with both heads fused into the loss (the [B·T, V] logits never built):
# fusedkd.FusedLinearDistillationLoss with weights 1 and 1 is exactly CE + forward KL (both /counted tokens).
HEAD_LOSS = fusedkd.FusedLinearDistillationLoss("forward_kl", weight_hard_loss=1.0, weight_soft_loss=1.0)


def _hidden(model, x):
    return model.rnn(model.embed(x))[0]


def _fused_head(student, teacher, x, y):
    with torch.no_grad():
        ht = _hidden(teacher, x)
    return HEAD_LOSS(_hidden(student, x), student.head.weight, ht, teacher.head.weight, y, student.head.bias,
                     teacher.head.bias)


FUSED_HEAD = "forward KL, fused head"  # a row with --fused-head

# The loss term alone, for the timing column: (function name, call(module, s, t, y)).
TERMS = {
    "CE": ("cross_entropy_loss", lambda m, s, t, y: m.cross_entropy_loss(s, y)),
    "forward KL": ("forward_kl_loss", lambda m, s, t, y: m.forward_kl_loss(s, t, y)),
    "reverse KL": ("reverse_kl_loss", lambda m, s, t, y: m.reverse_kl_loss(s, t, y)),
    "JSD": ("jsd_loss", lambda m, s, t, y: m.jsd_loss(s, t, y, beta=0.5)),
    "top-k KD": ("topk_kd_loss", lambda m, s, t, y: m.topk_kd_loss(s, *topk_teacher(t), y)),
}


def train(models: dict, data, steps, seed, recipes: dict, teacher=None, B=32, T=64, lr=3e-3):
    """Trains models[name] with recipes[name] for every name in lockstep: the same seeded batches for all,
    the teacher run once per batch (each model's result is what training it alone would give)."""
    opts = {name: torch.optim.Adam(m.parameters(), lr=lr) for name, m in models.items()}
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, y = data.batch(data.train, B, T, g)
        t = None
        if teacher is not None and not all(isinstance(recipes[n], HeadRecipe) for n in models):
            with torch.no_grad():
                t = teacher(x)
        for name, model in models.items():
            loss_fn = recipes[name]
            if isinstance(loss_fn, HeadRecipe):  # runs the teacher's body itself
                loss = loss_fn.fn(model, teacher, x, y)
            else:
                loss = loss_fn(model(x), t, y)
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opts[name].step()
    return models


@torch.no_grad()
def evaluate(model, data, T=256):
    """Next-character accuracy (%) and bits per character on the held-out tenth, in windows of T."""
    ids = data.test
    n = (len(ids) - 1) // T * T
    x, y = ids[:n].reshape(-1, T), ids[1 : n + 1].reshape(-1, T)
    logits = model(x)
    acc = (logits.argmax(-1) == y).float().mean().item() * 100
    bpc = torch.nn.functional.cross_entropy(logits.reshape(-1, data.V), y.reshape(-1)).item() / math.log(2)
    return acc, bpc


def step_times(name, teacher_logits, labels, repeats=100):
    """Median µs of forward + backward of the loss term alone, fused and reference alternating."""
    fn, call = TERMS[name]
    g = torch.Generator().manual_seed(0)
    s = torch.randn(teacher_logits.shape, generator=g).requires_grad_(True)
    times = {fusedkd: [], reference: []}
    for k in range(repeats + 10):
        for impl in times:
            t0 = time.perf_counter()
            call(impl, s, teacher_logits, labels).backward()
            if k >= 10:
                times[impl].append(time.perf_counter() - t0)
    return statistics.median(times[fusedkd]) * 1e6, statistics.median(times[reference]) * 1e6


def head_step_times(student, teacher, x, y, repeats=100):
    """Median µs of forward + backward of the heads and the loss: the fused head against the head GEMMs,
    then the reference CE + forward KL on the materialised logits."""
    with torch.no_grad():
        h, ht = _hidden(student, x), _hidden(teacher, x)
    h = h.detach().requires_grad_(True)
    W, b = student.head.weight, student.head.bias

    def materialised():
        s = torch.nn.functional.linear(h, W, b)
        with torch.no_grad():
            t = teacher.head(ht)
        return reference.cross_entropy_loss(s, y) + reference.forward_kl_loss(s, t, y)

    calls = {"fused": lambda: HEAD_LOSS(h, W, ht, teacher.head.weight, y, b, teacher.head.bias),
             "reference": materialised}
    times = {k: [] for k in calls}
    for k in range(repeats + 10):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call().backward()
            if k >= 10:
                times[name].append(time.perf_counter() - t0)
    return statistics.median(times["fused"]) * 1e6, statistics.median(times["reference"]) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=300_000, help="characters of the text used")
    parser.add_argument("--teacher-steps", type=int, default=600)
    parser.add_argument("--steps", type=int, default=300, help="training steps per student")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", help="also write the table (markdown) to this file")
    parser.add_argument("--fused-head", action="store_true",
                        help="one more row: CE + forward KL through fusedkd.FusedLinearDistillationLoss")
    args = parser.parse_args()
    if args.fused_head:
        RECIPES[FUSED_HEAD] = HeadRecipe(_fused_head)
    start = time.time()

    data = CharData(load_text(args.chars))
    print(f"pydoc_data.topics: {len(data.train)} train / {len(data.test)} held-out characters, V = {data.V}")
    torch.manual_seed(0)
    teacher = train({"CE": CharGRU(data.V, 256)}, data, args.teacher_steps, 0, RECIPES)["CE"]
    teacher.eval()
    t_acc, t_bpc = evaluate(teacher, data)

    results = {name: [] for name in RECIPES}
    for seed in range(args.seeds):
        students = {}
        for name in RECIPES:
            torch.manual_seed(100 + seed)  # the same initial student for every loss
            students[name] = CharGRU(data.V, 48)
        for name, student in train(students, data, args.steps, seed, RECIPES, teacher=teacher).items():
            results[name].append(evaluate(student, data))

    g = torch.Generator().manual_seed(1)
    x, y = data.batch(data.train, 32, 64, g)
    with torch.no_grad():
        t = teacher(x)
    lines = [
        f"Teacher GRU 256: {t_acc:.2f}% next-character accuracy, {t_bpc:.3f} bits/char held out. Students GRU 48, "
        f"{args.steps} steps, {args.seeds} seeds, [32, 64, {data.V}] logits per step.",
        "",
        "| loss | accuracy (%) | bits/char | loss step fused (µs) | reference (µs) | speed-up |",
        "|---|---|---|---|---|---|",
    ]
    for name in RECIPES:
        acc = statistics.mean(a for a, _ in results[name])
        bpc = statistics.mean(b for _, b in results[name])
        if isinstance(RECIPES[name], HeadRecipe):
            fused_us, ref_us = head_step_times(CharGRU(data.V, 48), teacher, x, y)
        else:
            fused_us, ref_us = step_times(name, t, y)
        lines.append(f"| {name} | {acc:.2f} | {bpc:.3f} | {fused_us:.1f} | {ref_us:.1f} | {ref_us / fused_us:.1f}× |")
    head = ("; the fused head: both heads and CE + forward KL, against the head GEMMs and the references on the "
            "materialised logits") if FUSED_HEAD in RECIPES else ""
    lines += ["", f"Loss step = forward+backward of the loss term alone on [32, 64, {data.V}] fp32 logits (CE: the "
              f"fused cross-entropy vs F.cross_entropy{head}), median of 100 runs alternating fused "
              "and reference, CPU, "
              f"{torch.get_num_threads()} threads. Total run time {time.time() - start:.0f} s."]
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
