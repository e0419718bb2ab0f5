#!/usr/bin/env python3
"""Shows that the emulated CUDA suite fails when a kernel is wrong (docs/cuda.md, "Emulation build").

Each mutation plants one real GPU bug in a copy of include/fusedkd/cuda (the copy is what an
emulation build in build/simt-mutants includes, so the tree itself is never modified), rebuilds
simt_test_cuda_executor there, runs the tests named by its filter and reports whether they failed.
Exits non-zero if any mutant survives (its tests all pass).

    .venv/bin/python scripts/simt_mutations.py            # all mutants (about a minute each on 2 cores)
    .venv/bin/python scripts/simt_mutations.py tail_off_by_one missing_broadcast_barrier
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "simt-mutants")
SHADOW = os.path.join(BUILD, "include")  # a copy of include/, mutated

# name: (file under include/fusedkd/cuda, original text, mutated text, gtest filter)
MUTANTS = {
    "missing_broadcast_barrier": (
        "reduce.cuh",
        "    if (lane == 0) slot[32] = w;\n  }\n  __syncthreads();\n",
        "    if (lane == 0) slot[32] = w;\n  }\n",
        "Grid/*_f32_f32_C4096_N3:Grid/*_f32_f32_C32000_N3:Losses/CudaLoss.ScheduleIndependentBitForBit/KD",
    ),
    "missing_partials_barrier": (
        "reduce.cuh",
        "  if (lane == 0) slot[warp] = v;\n  __syncthreads();\n",
        "  if (lane == 0) slot[warp] = v;\n",
        "Grid/*_f32_f32_C4096_N3:Losses/CudaLoss.ScheduleIndependentBitForBit/DKD",
    ),
    "group_broadcast_width_32": (
        "reduce.cuh",
        "return width > 1 ? shfl_any(v, 0, width) : v;",
        "return width > 1 ? shfl_any(v, 0, 32) : v;",
        "Grid/*_f32_f32_C100_N64:Grid/*_f32_f32_C7_N64",
    ),
    "tail_off_by_one": (
        "row_kernels.cuh",
        "  for (std::int64_t j = tail + lane; j < c1; j += width) f(j, A(load_elem(s + j)), A(load_elem(t + j)));",
        "  for (std::int64_t j = tail + lane; j <= c1; j += width) f(j, A(load_elem(s + j)), A(load_elem(t + j)));",
        "Grid/*_f32_f32_C7_N3:Grid/*_f32_f32_C1001_N3",
    ),
    "vector_count_rounds_up": (
        "row_kernels.cuh",
        "    const std::int64_t nvec = (c1 - c0) / K;\n#pragma unroll 2\n    for (std::int64_t v = lane; v < nvec; v += width) {\n      const std::int64_t j = c0 + v * K;\n      A sv[K], tv[K];\n      load_vec<K>(s + j, sv);\n      load_vec<K>(t + j, tv);\n#pragma unroll\n      for (int k = 0; k < K; ++k) f(j + k, sv[k], tv[k]);",
        "    const std::int64_t nvec = (c1 - c0 + K - 1) / K;\n#pragma unroll 2\n    for (std::int64_t v = lane; v < nvec; v += width) {\n      const std::int64_t j = c0 + v * K;\n      A sv[K], tv[K];\n      load_vec<K>(s + j, sv);\n      load_vec<K>(t + j, tv);\n#pragma unroll\n      for (int k = 0; k < K; ++k) f(j + k, sv[k], tv[k]);",
        "Grid/*_C7_N1:Grid/*_C1001_N1",
    ),
    "missing_uskd_tile_barrier": (
        "uskd_kernels.cuh",
        "        rank[q] += (rk > rj[q] || (rk == rj[q] && k < j)) ? 1 : 0;\n      }\n    }\n    __syncthreads();",
        "        rank[q] += (rk > rj[q] || (rk == rj[q] && k < j)) ? 1 : 0;\n      }\n    }",
        "Grid/*USKD_f32_f32_C4096_*",
    ),
    "block_above_launch_bounds": (
        "traits.cuh",
        "                                                                : 512;",
        "                                                                : 1024;",
        "Losses/CudaLoss.ExtremeLogits/*",
    ),
    "split_partials_indexed_wrongly": (
        "row_kernels.cuh",
        "static_cast<Stats*>(a.partials)[i * a.splits + split] = st;",
        "static_cast<Stats*>(a.partials)[i + split] = st;",
        "Grid/*_f32_f32_C32000_N3",
    ),
    "split_merge_skips_last_chunk": (
        "row_kernels.cuh",
        "for (int k = 1; k < a.splits; ++k) st.merge(part[k]);",
        "for (int k = 1; k + 1 < a.splits; ++k) st.merge(part[k]);",
        "Grid/*_f32_f32_C32000_N1",
    ),
}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, **kw)


def main(names: list[str]) -> int:
    names = names or list(MUTANTS)
    os.makedirs(BUILD, exist_ok=True)
    shutil.rmtree(SHADOW, ignore_errors=True)
    shutil.copytree(os.path.join(ROOT, "include"), SHADOW)
    r = run(["cmake", "-S", ".", "-B", BUILD, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DFUSEDKD_SIMT=ON",
             "-DFUSEDKD_CUDA=OFF", "-DFUSEDKD_TORCH=OFF", "-DFUSEDKD_BUILD_TESTS=OFF", "-DFUSEDKD_BUILD_BENCHMARKS=OFF",
             f"-DFUSEDKD_SIMT_INCLUDE_OVERRIDE={SHADOW}"])
    if r.returncode:
        print(r.stdout, r.stderr)
        return 2
    survivors = []
    for name in names:
        rel, old, new, flt = MUTANTS[name]
        path = os.path.join(SHADOW, "fusedkd", "cuda", rel)
        pristine = open(os.path.join(ROOT, "include", "fusedkd", "cuda", rel)).read()
        assert pristine.count(old) == 1, f"{name}: the original text is not found exactly once in {rel}"
        with open(path, "w") as f:
            f.write(pristine.replace(old, new))
        t0 = time.time()
        b = run(["cmake", "--build", BUILD, "--target", "simt_test_cuda_executor", "simt_cuda_example"])
        if b.returncode:
            print(f"{name:32s} BUILD FAILED\n{b.stdout[-2000:]}")
            survivors.append(name)
        else:
            t = run([os.path.join(BUILD, "simt_test_cuda_executor"), f"--gtest_filter={flt}", "--gtest_brief=1"],
                    timeout=900)
            failed = sorted({l.split("] ", 1)[1].split(",")[0].split(" (")[0] for l in t.stdout.splitlines()
                             if l.startswith("[  FAILED  ]") and "listed below" not in l})
            verdict = f"caught: {len(failed)} failed ({', '.join(failed[:2])}{', …' if len(failed) > 2 else ''})" \
                if t.returncode else "SURVIVED (all tests passed)"
            if not t.returncode:
                survivors.append(name)
            # The raw-pointer example (the compute-sanitizer driver) on a Block and a Split shape.
            ex = os.path.join(BUILD, "simt_cuda_example")
            caught = [shape for shape in (["4", "3000"], ["2", "20000"], ["3", "7"])
                      if run([ex, *shape, "all"], timeout=600).returncode]
            example = f"example caught it at N,C = {' and '.join(','.join(c) for c in caught)}" if caught \
                else "example passed"
            print(f"{name:32s} {verdict}; {example}  [{time.time() - t0:.0f} s]", flush=True)
        with open(path, "w") as f:
            f.write(pristine)
    print(f"{len(names) - len(survivors)} of {len(names)} mutants caught")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
