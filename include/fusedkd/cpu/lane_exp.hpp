// exp on SIMD lanes: a branch-free polynomial (Cephes expf: exp(x) = 2^n · e^r, n = round(x / ln 2),
// |r| ≤ ln2 / 2, degree-6 polynomial in r), within 2 ulp of expf over the normal range; results
// below 2^-126 are flushed to 0.
#pragma once

#include "lane_vector.hpp"

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // wide vectors by value in functions that are always inlined
#endif

namespace fusedkd::cpu {

// ----------------------------------------------------------------------------- exp
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> exp_(FloatLanes<W> x) {
  using I = typename LaneStorage<std::int32_t, W>::type;
  constexpr float kMaxArg = 88.3762626647949f;  // the largest x with round(x / ln 2) ≤ 127
  constexpr float kMinArg = -87.3365447504f;    // ln 2^-126: below, the result is flushed to 0
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;  // ln 2 = hi + lo (Cody–Waite)
  constexpr float kRound = 12582912.0f;  // 1.5 · 2^23: in t = y + kRound, t's low mantissa bits hold rint(y)
  constexpr std::int32_t kRoundBits = 0x4b400000;  // the bit pattern of kRound
  constexpr std::int32_t kExponentBias = 127;
  // The range masks are bitwise selects (exact for NaN, whatever the compiler lowers them to):
  // a NaN is in neither, stays in xc and comes out of the polynomial as NaN.
  const LaneMask<W> below = x < kMinArg, above = x > kMaxArg;
  const FloatLanes<W> xc = select(above, FloatLanes<W>(kMaxArg), select(below, FloatLanes<W>(kMinArg), x));
  const FloatLanes<W> t = xc * kLog2e + kRound;
  const FloatLanes<W> n = t - kRound;  // rint(x / ln 2)
  const FloatLanes<W> r = (xc - n * kLn2Hi) - n * kLn2Lo;  // e^x = 2^n e^r, |r| ≤ ln2 / 2
  // e^r ≈ 1 + r + r² P(r) (Cephes expf coefficients)
  FloatLanes<W> p(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  I two_n = lanes_detail::as_int(t);  // 2^n built in the exponent field from t's integer bits
  FUSEDKD_LANEWISE(W, two_n, (two_n - kRoundBits + kExponentBias) << 23,
                   std::int32_t(std::uint32_t(two_n[l] - kRoundBits + kExponentBias) << 23));
  const FloatLanes<W> y = select(above, FloatLanes<W>(INFINITY), p * lanes_detail::as_float<W>(two_n));
  return select(below, FloatLanes<W>(0.0f), y);
}

}  // namespace fusedkd::cpu

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
