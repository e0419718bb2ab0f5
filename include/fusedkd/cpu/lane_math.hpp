// |x|, tanh and log1p on SIMD lanes, for the token-level losses (softcapping, the JSD mixture's
// log-add-exp). Branch-free; each is checked against the C library in tests/cpp/test_cpu_lanes.cpp.
#pragma once

#include <cstdint>

#include "lane_exp.hpp"
#include "lane_vector.hpp"

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace fusedkd::cpu {

// |x|: the sign bit cleared (NaN stays NaN).
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> abs_(FloatLanes<W> x) {
  constexpr std::int32_t kAbsMask = 0x7fffffff;
  auto u = lanes_detail::as_int(x);
  FUSEDKD_LANEWISE(W, u, u & kAbsMask, u[l] & kAbsMask);
  return lanes_detail::as_float<W>(u);
}

// tanh(x) = sgn(x) (1 − e^{−2|x|}) / (1 + e^{−2|x|}); below |x| = kTanhSeriesBelow the odd series
// x − x³/3 + 2x⁵/15 − 17x⁷/315 (truncation < 1e-10 there) avoids the cancellation in 1 − e^{−2|x|}.
// Within a few ulp of tanhf; ±inf give ±1, NaN stays NaN.
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> tanh_(FloatLanes<W> x) {
  using V = FloatLanes<W>;
  constexpr float kTanhSeriesBelow = 0.0625f;
  const V a = abs_(x);
  const V e = exp_(V(-2.0f) * a);
  const V big = (V(1.0f) - e) / (V(1.0f) + e);
  const V a2 = a * a;
  const V small = a * (V(1.0f) + a2 * (V(-1.0f / 3.0f) + a2 * (V(2.0f / 15.0f) + a2 * V(-17.0f / 315.0f))));
  const V t = select(a < kTanhSeriesBelow, small, big);
  // the sign of x back on |tanh|
  constexpr std::int32_t kSignMask = std::int32_t(0x80000000u);
  auto ti = lanes_detail::as_int(t);
  const auto xi = lanes_detail::as_int(x);
  FUSEDKD_LANEWISE(W, ti, ti | (xi & kSignMask), ti[l] | (xi[l] & kSignMask));
  return lanes_detail::as_float<W>(ti);
}

// log(1 + u) for u in [0, 1] (the domain the losses use; NaN stays NaN). w = 1 + u in [1, 2] is
// written w = 2^e·m with m in [√½, √2), log m = f − f²/2 + f³ P(f) for f = m − 1 (Cephes logf's
// polynomial), and the rounding of w is undone as log1p(u) = log(w) · u / (w − 1) (w − 1 is exact).
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> log1p_(FloatLanes<W> u) {
  using V = FloatLanes<W>;
  constexpr float kSqrt2 = 1.41421356237f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  const V w = V(1.0f) + u;
  const LaneMask<W> halve = w > kSqrt2;
  const V e = select(halve, V(1.0f), V(0.0f));
  const V m = select(halve, w * 0.5f, w);
  const V f = m - 1.0f;
  const V z = f * f;
  V p(7.0376836292e-2f);
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  V y = f * z * p + e * kLn2Lo - 0.5f * z;
  const V log_w = (f + y) + e * kLn2Hi;
  const V wm1 = w - 1.0f;
  return select(wm1 == 0.0f, u, log_w * (u / select(wm1 == 0.0f, V(1.0f), wm1)));
}

}  // namespace fusedkd::cpu

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
