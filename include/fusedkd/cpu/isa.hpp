// Which SIMD width the CPU executor runs: 256-bit lanes (AVX2 + FMA) where the CPU has them,
// chosen at run time on x86 so one build runs everywhere; 128-bit lanes otherwise (SSE2 on
// x86-64, NEON on AArch64).
#pragma once

#include <type_traits>

#include "lanes.hpp"

#if FUSEDKD_CPU_VECTOR_EXTENSIONS && (defined(__x86_64__) || defined(__i386__))
#define FUSEDKD_CPU_AVX2_DISPATCH 1
#else
#define FUSEDKD_CPU_AVX2_DISPATCH 0
#endif

namespace fusedkd::cpu {

constexpr int kBaselineLanes = 4;  // floats in 128 bits
constexpr int kAvx2Lanes = 8;      // floats in 256 bits

#if FUSEDKD_CPU_AVX2_DISPATCH
inline bool cpu_has_avx2() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
}
#endif

namespace detail {

// Runs body(std::integral_constant<int, W>{}) compiled for the widest lanes the CPU has. body
// must be an always-inline lambda (FUSEDKD_LANES_INLINE_LAMBDA) so it takes the caller's target.
#if FUSEDKD_CPU_AVX2_DISPATCH
template <class Body> __attribute__((target("avx2,fma"))) void with_avx2_lanes(const Body& body) {
  body(std::integral_constant<int, kAvx2Lanes>{});
}
#endif
template <class Body> void with_baseline_lanes(const Body& body) { body(std::integral_constant<int, kBaselineLanes>{}); }
template <class Body> void with_lanes(const Body& body) {
#if FUSEDKD_CPU_AVX2_DISPATCH
  if (cpu_has_avx2()) return with_avx2_lanes(body);
#endif
  with_baseline_lanes(body);
}

}  // namespace detail

}  // namespace fusedkd::cpu
