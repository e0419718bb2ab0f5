#!/usr/bin/env bash
# The README's test command: sets up (scripts/setup.sh), then runs every test — GoogleTest through
# ctest, the CUDA kernels on the SIMT emulator (scripts/test_simt.sh; FUSEDKD_SIMT=OFF skips it),
# then pytest, then the distributed tests (scripts/test_distributed.sh). Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export CTEST_PARALLEL_LEVEL=${CTEST_PARALLEL_LEVEL:-$(nproc)}
echo "== C++ tests (ctest) =="
ctest --test-dir build/skbuild --output-on-failure
if [ "${FUSEDKD_SIMT:-ON}" != OFF ]; then
  echo "== CUDA kernels on the SIMT emulator (scripts/test_simt.sh) =="
  bash scripts/test_simt.sh
fi
echo "== Python tests (pytest) =="
.venv/bin/python -m pytest tests/python -q --ignore=tests/python/test_distributed.py "$@"
echo "== Distributed tests (gloo, 2 and 4 processes: scripts/test_distributed.sh) =="
bash scripts/test_distributed.sh
