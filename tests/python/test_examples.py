"""The main job's token-level part (examples/distill_char_lm.py) runs end to end at a tiny size and prints
its table: a row per loss with finite accuracy, bits/char and timings."""

from __future__ import annotations

import math
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_char_lm_example_runs_and_prints_every_loss(tmp_path):
    out = tmp_path / "table.md"
    subprocess.run([sys.executable, str(ROOT / "examples" / "distill_char_lm.py"), "--chars", "30000",
                    "--teacher-steps", "5", "--steps", "3", "--seeds", "1", "--fused-head", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=300)
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    names = [r[0].strip() for r in rows[1:]]
    assert names == ["CE", "forward KL", "reverse KL", "JSD", "top-k KD", "forward KL, fused head"], names
    for r in rows[1:]:
        acc, bpc, fused, ref = (float(x) for x in r[1:5])
        assert 0 <= acc <= 100 and math.isfinite(bpc) and fused > 0 and ref > 0, r
