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

# Every stage prints a line with the seconds since the start, and a long step (the compile) prints
# one every 20 s with the number of build steps finished, so nothing looks like a hang.
T0=$SECONDS
log() { printf '[setup %4ds] %s\n' $((SECONDS - T0)) "$*" >&2; }

# heartbeat LABEL COUNTER CMD...: runs CMD; every 20 s logs LABEL, the step's elapsed time and
# `COUNTER` (a function printing progress, may print nothing).
heartbeat() {
  local label=$1 counter=$2 start=$SECONDS pid rc=0 n=0
  shift 2
  "$@" &
  pid=$!
  trap 'kill "$pid" 2>/dev/null' INT TERM
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    n=$((n + 1))
    if ((n % 20 == 0)); then log "$label: $((SECONDS - start)) s so far$($counter)"; fi
  done
  wait "$pid" || rc=$?
  trap - INT TERM
  return $rc
}
no_progress() { :; }
# Compile steps ninja has finished in build/skbuild since the build started (.ninja_log grows by
# one line per finished step).
NINJA_LOG=$ROOT/build/skbuild/.ninja_log
ninja_steps_at_start=0
build_progress() {
  [ -f "$NINJA_LOG" ] || return 0
  local n
  n=$(($(wc -l <"$NINJA_LOG") - ninja_steps_at_start))
  ((n > 0)) && printf ', %d build steps done' "$n"
  return 0
}

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
  log "installing requirements (torch from PyPI, ~5.5 GB unpacked: about 1.5 min with an empty uv cache, seconds with a warm one)"
  heartbeat "installing requirements" no_progress env VIRTUAL_ENV="$VENV" $UV pip install -q -r requirements-dev.txt
  cp requirements-dev.txt "$stamp"
  log "requirements installed"
else
  log "requirements up to date"
fi

# 3. Build and install fusedkd (CMake via scikit-build-core), reusing build/skbuild.
if [ -f "$NINJA_LOG" ]; then
  ninja_steps_at_start=$(wc -l <"$NINJA_LOG")
  log "building fusedkd (incremental, build/skbuild)"
else
  log "building fusedkd from scratch in build/skbuild (CPU-only about 3 min on 2 cores; the CUDA kernels add their nvcc time)"
fi
build_start=$SECONDS
heartbeat "building fusedkd" build_progress env VIRTUAL_ENV="$VENV" $UV pip install -q --no-build-isolation --no-deps --reinstall-package fusedkd \
  -C build-dir=build/skbuild \
  -C cmake.define.FUSEDKD_BUILD_TESTS="${FUSEDKD_BUILD_TESTS:-ON}" \
  -C cmake.define.FUSEDKD_BUILD_BENCHMARKS="${FUSEDKD_BUILD_TESTS:-ON}" \
  -C cmake.define.FUSEDKD_CUDA="${FUSEDKD_CUDA:-AUTO}" \
  -C cmake.define.FUSEDKD_CUDA_ARCHS="${FUSEDKD_CUDA_ARCHS:-90-real}" \
  -C build.verbose=false .
log "fusedkd built and installed in $((SECONDS - build_start)) s"
"$VENV/bin/python" -c "import fusedkd, torch; print(f'[setup] fusedkd {fusedkd.__version__} on torch {torch.__version__}; CUDA kernels built: {fusedkd.HAS_CUDA_KERNELS}')" >&2
