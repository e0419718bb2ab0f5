#!/usr/bin/env bash
# Creates .venv and installs what the project needs (torch from PyPI included), then builds and
# installs fusedkd into it. Idempotent and fast on a second run: uv keeps a wheel cache
# (~/.cache/uv), the requirements are reinstalled only when requirements-dev.txt changes, and
# the CMake build directory (build/skbuild) is reused, so only changed sources recompile.
#
#   scripts/setup.sh            set up and build (CUDA kernels too when nvcc is found)
# Environment: FUSEDKD_CUDA=AUTO|ON|OFF, FUSEDKD_CUDA_ARCHS (default 90-real here; see docs/build.md),
#              FUSEDKD_BUILD_TESTS=ON|OFF (default ON: GoogleTest + benchmark binaries in build/skbuild).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}

log() { printf '[setup] %s\n' "$*" >&2; }

# 1. uv: a fast installer with a shared cache (from PyPI).
if ! command -v uv >/dev/null 2>&1; then
  log "installing uv"
  "$PY" -m pip install -q --user uv 2>/dev/null || "$PY" -m pip install -q uv
  export PATH="$HOME/.local/bin:$PATH"
fi
UV=$(command -v uv || echo "$PY -m uv")

# 2. The virtual environment and its packages (only when the requirements changed).
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  $UV venv -q "$VENV" --python "$PY"
fi
stamp=$VENV/.fusedkd-requirements
if ! cmp -s requirements-dev.txt "$stamp"; then
  log "installing requirements (torch from PyPI; cached after the first time)"
  VIRTUAL_ENV=$VENV $UV pip install -q -r requirements-dev.txt
  cp requirements-dev.txt "$stamp"
fi

# 3. Build and install fusedkd (CMake via scikit-build-core), reusing build/skbuild.
log "building fusedkd"
VIRTUAL_ENV=$VENV $UV pip install -q --no-build-isolation --no-deps --reinstall-package fusedkd \
  -C build-dir=build/skbuild \
  -C cmake.define.FUSEDKD_BUILD_TESTS="${FUSEDKD_BUILD_TESTS:-ON}" \
  -C cmake.define.FUSEDKD_BUILD_BENCHMARKS="${FUSEDKD_BUILD_TESTS:-ON}" \
  -C cmake.define.FUSEDKD_CUDA="${FUSEDKD_CUDA:-AUTO}" \
  -C cmake.define.FUSEDKD_CUDA_ARCHS="${FUSEDKD_CUDA_ARCHS:-90-real}" \
  -C build.verbose=false .
"$VENV/bin/python" -c "import fusedkd, torch; print(f'[setup] fusedkd {fusedkd.__version__} on torch {torch.__version__}; CUDA kernels built: {fusedkd.HAS_CUDA_KERNELS}')" >&2
