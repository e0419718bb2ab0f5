#!/usr/bin/env bash
# The README's main job: real distillation runs on data that packages ship: scikit-learn's digits
# (every classification loss), then a character-level language model on Python's bundled
# documentation text (the token-level losses). Arguments go to the digits run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/distill_digits.py "$@"
exec .venv/bin/python examples/distill_char_lm.py
