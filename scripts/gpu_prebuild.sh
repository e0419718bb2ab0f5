#!/usr/bin/env bash
# Builds here (no GPU needed) everything the GPU check runs, for sm_90 (H100/H200), and packs it
# into one folder that travels to a GPU machine (docs/cuda.md, "GPU check"):
#   _C.so                    the torch extension with its CUDA kernels (stable ABI, torch >= 2.10)
#   test_cuda_executor       the CUDA GoogleTest suite (GPU vs CPU executor)
#   test_topk_cuda           top-k KD's kernels vs the CPU executor
#   test_shard_cuda          the vocabulary-shard kernels vs the CPU shard executor
#   fusedkd_cuda_example     the raw-pointer example (also the compute-sanitizer driver)
#   bench_cuda_executor      the CUDA executor's Google Benchmark (when Google Benchmark is found)
#   lib/                     shared libraries the binaries need beyond the system's (libbenchmark)
#   MANIFEST                 commit, torch, nvcc, architectures, sizes
# Binaries are stripped; the folder must stay under the 64 MiB that a device call carries.
#
#   scripts/gpu_prebuild.sh [DIR]      DIR defaults to gpu_artifacts (git-ignored)
# Then, on the GPU machine:  bash scripts/gpu_check.sh --prebuilt DIR OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-gpu_artifacts}
LIMIT_MIB=${LIMIT_MIB:-60}
t0=$(date +%s)
FUSEDKD_CUDA=ON FUSEDKD_CUDA_ARCHS=${FUSEDKD_CUDA_ARCHS:-90-real} FUSEDKD_BUILD_TESTS=ON bash scripts/setup.sh
BUILD=build/skbuild
echo "[gpu_prebuild] building the CUDA test, example and benchmark binaries"
cmake --build "$BUILD" --target test_cuda_executor test_topk_cuda test_shard_cuda fusedkd_cuda_example
cmake --build "$BUILD" --target bench_cuda_executor 2>/dev/null || echo "[gpu_prebuild] bench_cuda_executor not configured (Google Benchmark missing): skipped"
rm -rf "$DIR" && mkdir -p "$DIR"
cp "$BUILD"/_C*.so "$DIR/_C.so"
cp "$BUILD/tests/cpp/test_cuda_executor" "$BUILD/tests/cpp/test_topk_cuda" "$BUILD/tests/cpp/test_shard_cuda" \
  "$BUILD/tests/cpp/fusedkd_cuda_example" "$DIR/"
[ -x "$BUILD/benchmarks/bench_cuda_executor" ] && cp "$BUILD/benchmarks/bench_cuda_executor" "$DIR/"
strip --strip-unneeded "$DIR"/*
# Shared libraries of this machine that a GPU machine's image may lack (Google Benchmark): lib/,
# put on LD_LIBRARY_PATH by gpu_check.sh --prebuilt.
mkdir -p "$DIR/lib"
for bin in "$DIR"/test_cuda_executor "$DIR"/test_topk_cuda "$DIR"/test_shard_cuda "$DIR"/fusedkd_cuda_example "$DIR"/bench_cuda_executor; do
  [ -x "$bin" ] || continue
  ldd "$bin" | awk '/=> \// {print $3}' | grep -E 'libbenchmark|libgtest' | while read -r lib; do cp -L "$lib" "$DIR/lib/"; done
done
{
  echo "commit $(git rev-parse HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
  echo "built $(date -u +%FT%TZ) on $(uname -m)"
  echo "torch $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
  echo "nvcc $(nvcc --version | grep -o 'release [0-9.]*')"
  echo "archs $(grep -o 'FUSEDKD_CUDA_ARCHS:STRING=.*' "$BUILD/CMakeCache.txt" | cut -d= -f2)"
  (cd "$DIR" && ls -lR --block-size=K | grep -v '^total')
} >"$DIR/MANIFEST"
total=$(du -sm "$DIR" | cut -f1)
cat "$DIR/MANIFEST"
echo "[gpu_prebuild] $DIR: ${total} MiB in $(($(date +%s) - t0)) s"
if [ "$total" -gt "$LIMIT_MIB" ]; then
  echo "[gpu_prebuild] $DIR is over ${LIMIT_MIB} MiB: it would not travel to the GPU machine" >&2
  exit 1
fi
