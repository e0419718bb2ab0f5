#!/usr/bin/env bash
# The CUDA executor's tests on the SIMT emulator (docs/cuda.md, "Emulation build"): no GPU needed.
#   scripts/test_simt.sh            ci: the emulated CUDA suite (CI subset of the grid, the example,
#                                   the emulator's own tests), then a varied-schedule pass and an
#                                   AddressSanitizer + UBSan pass over a smaller subset
#   scripts/test_simt.sh full       the whole grid of tests/cpp/test_cuda_executor.cu (long)
#   scripts/test_simt.sh quick      the emulated suite only
# Build directories: build/simt, build/simt-asan. Exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-ci}
JOBS=${JOBS:-$(nproc)}
log() { printf '[simt %4ss] %s\n' "$((SECONDS))" "$*"; }
configure() {  # DIR [extra cmake args]
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFUSEDKD_SIMT=ON -DFUSEDKD_CUDA=OFF \
    -DFUSEDKD_TORCH=OFF -DFUSEDKD_BUILD_TESTS=OFF -DFUSEDKD_BUILD_BENCHMARKS=OFF "$@" >/dev/null
}

log "building the emulation targets (build/simt)"
configure build/simt
cmake --build build/simt -j "$JOBS"
if [ "$MODE" = full ]; then
  log "whole grid (FUSEDKD_SIMT_FULL_GRID=1)"
  FUSEDKD_SIMT_FULL_GRID=1 ctest --test-dir build/simt -j "$JOBS" --output-on-failure
  exit 0
fi
log "emulated CUDA suite"
ctest --test-dir build/simt -j "$JOBS" --output-on-failure
[ "$MODE" = quick ] && exit 0

# The same kernels under a shuffled schedule (block order, thread order per barrier interval):
# every comparison against the CPU executor must still hold.
SUBSET='Grid/*_N3:Grid/*_N64:Losses/*:CudaScaleRows.*'
log "varied schedule (FUSEDKD_SIMT_SEED=0x5eed): $SUBSET"
FUSEDKD_SIMT_SEED=0x5eed bash scripts/run_gtest_shards.sh build/simt/simt_test_cuda_executor "$JOBS" \
  --gtest_filter="$SUBSET" --gtest_brief=1
FUSEDKD_SIMT_SEED=0x5eed build/simt/simt_cuda_example 64 3000 all
FUSEDKD_SIMT_SEED=0x5eed build/simt/simt_test_topk_cuda --gtest_brief=1
FUSEDKD_SIMT_SEED=0x5eed build/simt/simt_test_shard_cuda --gtest_brief=1

# AddressSanitizer + UBSan: device buffers and shared memory are exact-size host allocations, so
# any out-of-bounds access of a kernel is reported. This build compiles the f32/f32, bf16/bf16 and
# f32/bf16 pairs only (FUSEDKD_TEST_FEW_PAIRS: every vector width and a mixed pair), at -O1.
log "building with AddressSanitizer + UBSan (build/simt-asan)"
configure build/simt-asan -DFUSEDKD_SIMT_SANITIZE=address,undefined
cmake --build build/simt-asan -j "$JOBS" --target simt_test_cuda_executor simt_cuda_example simt_test_emulator \
  simt_test_topk_cuda simt_test_shard_cuda
ASAN_SUBSET='Grid/*_N1:Grid/*_N3:Losses/*:CudaScaleRows.*:CudaHostChecks.*'
log "sanitized subset: $ASAN_SUBSET"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
build/simt-asan/simt_test_emulator --gtest_brief=1
build/simt-asan/simt_test_topk_cuda --gtest_brief=1
build/simt-asan/simt_test_shard_cuda --gtest_brief=1
bash scripts/run_gtest_shards.sh build/simt-asan/simt_test_cuda_executor "$JOBS" --gtest_filter="$ASAN_SUBSET" --gtest_brief=1
build/simt-asan/simt_cuda_example 5 100 all
build/simt-asan/simt_cuda_example 3 3000 all
build/simt-asan/simt_cuda_example 2 20000 all
log "done"
