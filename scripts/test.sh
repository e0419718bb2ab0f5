#!/usr/bin/env bash
# The README's test command: sets up (scripts/setup.sh), then runs every test —
# GoogleTest through ctest, then pytest. Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CTEST_PARALLEL_LEVEL=${CTEST_PARALLEL_LEVEL:-$(nproc)}
echo "== C++ tests (ctest) =="
ctest --test-dir build/skbuild --output-on-failure
echo "== Python tests (pytest) =="
.venv/bin/python -m pytest tests/python -q "$@"
