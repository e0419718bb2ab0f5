#!/usr/bin/env bash
# The README's main job: a real distillation run on scikit-learn's bundled digits data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/distill_digits.py "$@"
