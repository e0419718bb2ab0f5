#!/usr/bin/env bash
# GPU check for a machine with an NVIDIA GPU and a CUDA build of torch (no internet needed).
#
# Prebuilt (the way to spend a lent GPU's minutes on testing, not compiling; docs/cuda.md):
#   here:   bash scripts/gpu_prebuild.sh gpu_artifacts        (sm_90 binaries, < 64 MiB)
#   there:  bash scripts/gpu_check.sh --prebuilt gpu_artifacts [OUTDIR]
# From source (needs nvcc, CMake, ninja there; about 10 minutes on 16 cores):
#   bash scripts/gpu_check.sh [OUTDIR]
#
# Steps: 1. build (from source only); 2. the CUDA GoogleTest suite (8 parallel shards) and the
# raw-pointer example; 3. compute-sanitizer memcheck and racecheck over every loss on Group /
# Block / Split shapes, and the shard kernels; 4. pytest tests/python (CUDA tests included) with the extension on
# PYTHONPATH; 5. benchmarks/bench.py and bench_fused_linear.py --device cuda --quick, the C++ CUDA benchmark
# (bench_cuda_executor, CUDA events) on a subset, and Nsight Compute's speed-of-light / memory
# sections for KD and the roofline kernel. Every step is time-boxed against an overall budget
# (BUDGET seconds, default 570) so the summary is always written. Results: OUTDIR/summary.txt
# plus one log per step (at most 8 files). OUTDIR defaults to $OUT, else ./out/gpu_check.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREBUILT=
if [ "${1:-}" = "--prebuilt" ]; then
  PREBUILT=$(cd "$2" && pwd)
  shift 2
fi
OUTDIR=${1:-${OUT:-$ROOT/out/gpu_check}}
mkdir -p "$OUTDIR"
SUMMARY=$OUTDIR/summary.txt
PY=${PYTHON:-python3}
BUILD=${BUILD_DIR:-/tmp/fusedkd_gpu_build}
PKG=${PKG_DIR:-/tmp/fusedkd_gpu_pkg}
JOBS=${JOBS:-$(nproc)}
ARCHS=${CUDA_ARCHS:-native}  # override only to dry-run the script on a machine without a GPU
START=$(date +%s)
DEADLINE=$((START + ${BUDGET:-570}))
: >"$SUMMARY"
cd "$ROOT" || exit 1

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME MAX_SECONDS LOG CMD...: runs CMD (appending to LOG) for at most MAX_SECONDS and no
# later than the deadline; records rc and duration in the summary. Returns CMD's rc.
step() {
  local name=$1 max=$2 log=$3
  shift 3
  local now left t0 rc
  now=$(date +%s)
  left=$((DEADLINE - now))
  [ "$max" -gt "$left" ] && max=$left
  if [ "$max" -le 5 ]; then
    note "SKIP  $name (out of time)"
    return 124
  fi
  t0=$now
  echo "===== $name (limit ${max}s): $*" >>"$log"
  timeout --kill-after=10 "$max" "$@" >>"$log" 2>&1
  rc=$?
  local status=PASS
  [ $rc -ne 0 ] && status=FAIL
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && status=TIMEOUT
  note "$(printf '%-7s %-34s rc=%-3s %4ss  log=%s' "$status" "$name" "$rc" "$(($(date +%s) - t0))" "$(basename "$log")")"
  return $rc
}

# ------------------------------------------------------------------ 0. environment
ENV_LOG=$OUTDIR/env.log
{
  date -u
  nvidia-smi || true
  command -v nvcc && nvcc --version | tail -2
  cmake --version | head -1
  command -v ninja
  command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer
  "$PY" -c "import sys, torch; print(sys.executable, sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  "$PY" -c "import xdist; print('pytest-xdist', xdist.__version__)" || true
  ls /usr/include/gtest/gtest.h /usr/lib/x86_64-linux-gnu/libgtest* 2>/dev/null || echo "no system GoogleTest"
} >"$ENV_LOG" 2>&1
note "fusedkd GPU check — $(date -u +%FT%TZ) — $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
note "torch: $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)   nvcc: $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*')"

# ------------------------------------------------------------------ 1. build
BUILD_LOG=$OUTDIR/build.log
if [ -n "$PREBUILT" ]; then
  note "prebuilt artifacts: $PREBUILT"
  cat "$PREBUILT/MANIFEST" >>"$BUILD_LOG" 2>&1
  note "        $(head -1 "$PREBUILT/MANIFEST" 2>/dev/null)"
  EXAMPLE=$PREBUILT/fusedkd_cuda_example
  TEST_BIN=$PREBUILT/test_cuda_executor
  TOPK_BIN=$PREBUILT/test_topk_cuda
  SHARD_BIN=$PREBUILT/test_shard_cuda
  CUDA_BENCH=$PREBUILT/bench_cuda_executor
  EXT_SO=$PREBUILT/_C.so
  export LD_LIBRARY_PATH=$PREBUILT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
else
  CMAKE_ARGS=(-S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFUSEDKD_CUDA=ON "-DFUSEDKD_CUDA_ARCHS=$ARCHS"
    -DFUSEDKD_TORCH=ON "-DPython3_EXECUTABLE=$(command -v "$PY")" -DFUSEDKD_BUILD_BENCHMARKS=ON)
  HAVE_TESTS=1
  if ! step "configure" 120 "$BUILD_LOG" cmake "${CMAKE_ARGS[@]}" -DFUSEDKD_BUILD_TESTS=ON; then
    note "      configure with tests failed (GoogleTest missing?): retrying without the C++ tests"
    HAVE_TESTS=0
    rm -rf "$BUILD"
    step "configure (no tests)" 120 "$BUILD_LOG" cmake "${CMAKE_ARGS[@]}" -DFUSEDKD_BUILD_TESTS=OFF
  fi
  step "build (-j$JOBS, archs $ARCHS)" 330 "$BUILD_LOG" cmake --build "$BUILD" -j "$JOBS"
  EXAMPLE=$BUILD/tests/cpp/fusedkd_cuda_example
  if [ ! -x "$EXAMPLE" ]; then  # no tests configured: build the sanitizer driver by hand
    EXAMPLE=$BUILD/fusedkd_cuda_example
    step "build example (nvcc)" 200 "$BUILD_LOG" nvcc -std=c++17 -O2 -arch=native --expt-relaxed-constexpr -lineinfo \
      -I "$ROOT/include" examples/cuda_raw_pointers.cu -o "$EXAMPLE"
  fi
  TEST_BIN=$BUILD/tests/cpp/test_cuda_executor
  TOPK_BIN=$BUILD/tests/cpp/test_topk_cuda
  SHARD_BIN=$BUILD/tests/cpp/test_shard_cuda
  CUDA_BENCH=$BUILD/benchmarks/bench_cuda_executor
  EXT_SO=$(ls "$BUILD"/_C*.so 2>/dev/null | head -1)
fi

# The package as Python sees it: python/fusedkd plus the fresh _C.so.
rm -rf "$PKG" && mkdir -p "$PKG"
cp -r "$ROOT/python/fusedkd" "$PKG/"
cp "$EXT_SO" "$PKG/fusedkd/" 2>>"$BUILD_LOG" || note "FAIL    extension _C.so not built"
export PYTHONPATH=$PKG${PYTHONPATH:+:$PYTHONPATH}
"$PY" -c "import fusedkd; print('HAS_CUDA_KERNELS', fusedkd.HAS_CUDA_KERNELS)" >>"$BUILD_LOG" 2>&1 &&
  note "        $(tail -1 "$BUILD_LOG")"

# ------------------------------------------------------------------ 2. CUDA GoogleTest suite
CTEST_LOG=$OUTDIR/ctest.log
if [ -x "$TEST_BIN" ]; then
  step "test_cuda_executor (8 shards)" 200 "$CTEST_LOG" bash "$ROOT/scripts/run_gtest_shards.sh" "$TEST_BIN" 8
  note "        $(grep -E '^shards:' "$CTEST_LOG" | tail -1)"
else
  note "SKIP    test_cuda_executor (not built: no GoogleTest on this machine)"
fi
if [ -x "$TOPK_BIN" ]; then
  step "test_topk_cuda" 60 "$CTEST_LOG" "$TOPK_BIN" --gtest_brief=1
fi
if [ -x "$SHARD_BIN" ]; then
  step "test_shard_cuda" 60 "$CTEST_LOG" "$SHARD_BIN" --gtest_brief=1
fi
if [ -x "$EXAMPLE" ]; then
  step "cuda example 300x5000 + 4x20000" 60 "$CTEST_LOG" bash -c "'$EXAMPLE' 300 5000 all && '$EXAMPLE' 4 20000 all"
fi
if [ -z "$PREBUILT" ] && [ "$HAVE_TESTS" = 1 ]; then
  step "ctest -j$JOBS (CPU suite)" 200 "$CTEST_LOG" ctest --test-dir "$BUILD" -j "$JOBS" --output-on-failure -E 'test_cuda_executor|fusedkd_cuda_example'
  note "        $(grep -E 'tests passed|tests failed' "$CTEST_LOG" | tail -1)"
fi

# ------------------------------------------------------------------ 3. compute-sanitizer
SAN_LOG=$OUTDIR/sanitizer.log
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$SAN" ] && [ -x "$EXAMPLE" ]; then
  # Group (C ≤ 1024), Block (≤ 8192), Split (> 8192) plans; every loss in each run.
  for tool in memcheck racecheck; do
    for shape in "5 100" "3 3000" "2 20000"; do
      # shellcheck disable=SC2086
      step "sanitizer $tool N,C=${shape/ /,}" 120 "$SAN_LOG" "$SAN" --tool "$tool" --error-exitcode 99 "$EXAMPLE" $shape all
    done
  done
  if [ -x "$SHARD_BIN" ]; then  # the vocabulary-shard kernels (Group and Block shard rows)
    step "sanitizer memcheck test_shard_cuda" 120 "$SAN_LOG" "$SAN" --tool memcheck --error-exitcode 99 "$SHARD_BIN" \
      --gtest_brief=1 --gtest_filter='*Float32:*BadLabel*'
  fi
  if [ -x "$TOPK_BIN" ]; then  # top-k KD's kernel (its shared bitmap and the barrier before K's rewrites)
    for tool in memcheck racecheck; do
      step "sanitizer $tool test_topk_cuda" 240 "$SAN_LOG" "$SAN" --tool "$tool" --error-exitcode 99 "$TOPK_BIN" --gtest_brief=1
    done
  fi
  note "        sanitizer summaries: $(grep -c 'ERROR SUMMARY: 0 errors' "$SAN_LOG") clean memcheck, $(grep -c 'RACECHECK SUMMARY: 0 hazards' "$SAN_LOG") clean racecheck (of 3 each)"
else
  note "SKIP    compute-sanitizer (tool or driver missing)"
fi

# ------------------------------------------------------------------ 4. pytest
PYTEST_LOG=$OUTDIR/pytest.log
XDIST=()
"$PY" -c "import xdist" 2>/dev/null && XDIST=(-n 8)
step "pytest tests/python" 240 "$PYTEST_LOG" "$PY" -m pytest tests/python -q -p no:cacheprovider "${XDIST[@]}" -rfEs
note "        $(grep -E '(passed|failed|error)' "$PYTEST_LOG" | tail -1)"

# ------------------------------------------------------------------ 5. benchmarks
BENCH_LOG=$OUTDIR/bench.log
if [ -f "$ROOT/benchmarks/bench.py" ]; then
  step "bench.py --device cuda --quick" 120 "$BENCH_LOG" "$PY" benchmarks/bench.py --device cuda --quick
else
  note "SKIP    benchmarks/bench.py (not present)"
fi
# The fused linear head against the materialised-logits step (time, peak memory; Liger's chunked JSD
# when liger_kernel imports) at BT = 8192, V = 128256, H = 4096, bf16.
step "bench_fused_linear.py --device cuda --quick" 90 "$BENCH_LOG" "$PY" benchmarks/bench_fused_linear.py \
  --device cuda --quick

if [ -x "$CUDA_BENCH" ]; then
  # Large shapes of the row-local losses against the roofline kernel and the backward's scaling.
  step "bench_cuda_executor (subset)" 150 "$OUTDIR/bench_cuda.log" "$CUDA_BENCH" --benchmark_min_time=0.05 \
    --benchmark_filter='^(kd|dkd|nkd|rld|roofline_add)/(f32|bf16)/N:(128|4096)/C:(100|1000|32000|128256)/|^scale_rows/|^topk_kd_ghost/bf16/N:4096/'
  # Profiler evidence for the roofline target: Nsight Compute's speed-of-light and memory sections
  # for the fused KD (bf16, 4096 x 128256: Split plan) and the roofline kernel on the same shape.
  NCU=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  if [ -x "$NCU" ]; then
    for bench in kd roofline_add; do  # the first two kernels of each (ncu flushes the caches itself)
      step "ncu: $bench bf16 4096x128256" 60 "$OUTDIR/bench_cuda.log" "$NCU" --section SpeedOfLight \
        --section MemoryWorkloadAnalysis --kernel-name regex:'row_split_(stats|grad)_kernel|add_kernel' \
        --launch-count 2 "$CUDA_BENCH" --benchmark_min_time=0.001 \
        --benchmark_filter="^$bench/bf16/N:4096/C:128256/"
    done
  else
    note "SKIP    ncu (not found)"
  fi
else
  note "SKIP    bench_cuda_executor (Google Benchmark not found at configure time)"
fi

note "total $(($(date +%s) - START))s; logs in $OUTDIR"
grep -q '^FAIL\|^TIMEOUT' "$SUMMARY" && exit 1
exit 0
