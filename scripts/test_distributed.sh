#!/usr/bin/env bash
# The vocabulary-parallel tests: fusedkd.distributed on gloo process groups of 2 and 4 (spawned by
# tests/python/test_distributed.py, each bounded by its own deadline). Needs the set-up of
# scripts/setup.sh; run by scripts/test.sh (CI) as its own step.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest tests/python/test_distributed.py -q "$@"
