// Fixed-width SIMD lanes for the CPU executor: W floats (FloatLanes), W column indices
// (IndexLanes) and W-lane masks (LaneMask), with the arithmetic the loss policies use, so a
// policy's push()/grad() templates run unchanged on W columns at once.
//
// Built on the GCC/Clang vector extensions (the compiler picks SSE, AVX or NEON for the width
// and the target); other compilers get plain arrays and loops. exp_ is a branch-free polynomial
// (Cephes expf: exp(x) = 2^n · e^r, n = round(x / ln 2), |r| ≤ ln2 / 2, degree-6 polynomial in r),
// within 2 ulp of expf over the normal range; results below 2^-126 are flushed to 0.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../numeric.hpp"

#if defined(__GNUC__) && !defined(__CUDACC__)
#define FUSEDKD_CPU_VECTOR_EXTENSIONS 1
#define FUSEDKD_LANES_INLINE inline __attribute__((always_inline))
#define FUSEDKD_LANES_INLINE_LAMBDA __attribute__((always_inline))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // wide vectors by value in functions that are always inlined
#else
#define FUSEDKD_CPU_VECTOR_EXTENSIONS 0
#define FUSEDKD_LANES_INLINE inline
#define FUSEDKD_LANES_INLINE_LAMBDA
#endif

namespace fusedkd::cpu {

template <class T, int W> struct LaneStorage {
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
  typedef T type __attribute__((vector_size(W * sizeof(T))));
#else
  struct type {
    T v[W];
    T& operator[](int l) { return v[l]; }
    const T& operator[](int l) const { return v[l]; }
  };
#endif
};

// Element-wise op over lanes, written once for both representations.
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#define FUSEDKD_LANEWISE(W, out, expr_vec, expr_lane) out = (expr_vec)
#else
#define FUSEDKD_LANEWISE(W, out, expr_vec, expr_lane) \
  for (int l = 0; l < (W); ++l) out[l] = (expr_lane)
#endif

template <int W> struct LaneMask {
  typename LaneStorage<std::int32_t, W>::type m;  // all ones (true) or 0 per lane
};

template <int W> struct FloatLanes {
  using raw = typename LaneStorage<float, W>::type;
  raw v;
  FUSEDKD_LANES_INLINE FloatLanes() = default;
  FUSEDKD_LANES_INLINE FloatLanes(raw r) : v(r) {}
  FUSEDKD_LANES_INLINE FloatLanes(float x) {  // broadcast
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
    v = raw{} + x;
#else
    for (int l = 0; l < W; ++l) v[l] = x;
#endif
  }
  FUSEDKD_LANES_INLINE float operator[](int l) const { return v[l]; }
};

template <int W> struct IndexLanes {
  typename LaneStorage<std::int32_t, W>::type v;
  // Columns j0, j0 + 1, ..., j0 + W − 1.
  FUSEDKD_LANES_INLINE static IndexLanes iota(std::int64_t j0) {
    IndexLanes r;
    for (int l = 0; l < W; ++l) r.v[l] = std::int32_t(j0 + l);
    return r;
  }
  FUSEDKD_LANES_INLINE static IndexLanes filled(std::int32_t j) {
    IndexLanes r;
    for (int l = 0; l < W; ++l) r.v[l] = j;
    return r;
  }
  FUSEDKD_LANES_INLINE std::int32_t operator[](int l) const { return v[l]; }
};

namespace lanes_detail {
template <int W> FUSEDKD_LANES_INLINE typename LaneStorage<std::int32_t, W>::type as_int(const FloatLanes<W>& a) {
  typename LaneStorage<std::int32_t, W>::type r;
  std::memcpy(&r, &a.v, sizeof r);
  return r;
}
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> as_float(const typename LaneStorage<std::int32_t, W>::type& a) {
  FloatLanes<W> r;
  std::memcpy(&r.v, &a, sizeof r.v);
  return r;
}
}  // namespace lanes_detail

// ----------------------------------------------------------------------------- arithmetic
#define FUSEDKD_LANES_BINARY(op)                                                                  \
  template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> operator op(FloatLanes<W> a, FloatLanes<W> b) { \
    FloatLanes<W> r;                                                                              \
    FUSEDKD_LANEWISE(W, r.v, a.v op b.v, a.v[l] op b.v[l]);                                        \
    return r;                                                                                     \
  }                                                                                               \
  template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> operator op(FloatLanes<W> a, float b) {       \
    return a op FloatLanes<W>(b);                                                                 \
  }                                                                                               \
  template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> operator op(float a, FloatLanes<W> b) {       \
    return FloatLanes<W>(a) op b;                                                                 \
  }                                                                                               \
  template <int W> FUSEDKD_LANES_INLINE FloatLanes<W>& operator op##=(FloatLanes<W>& a, FloatLanes<W> b) { \
    a = a op b;                                                                                   \
    return a;                                                                                     \
  }
FUSEDKD_LANES_BINARY(+)
FUSEDKD_LANES_BINARY(-)
FUSEDKD_LANES_BINARY(*)
FUSEDKD_LANES_BINARY(/)
#undef FUSEDKD_LANES_BINARY

template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> operator-(FloatLanes<W> a) { return FloatLanes<W>(0.0f) - a; }

// ----------------------------------------------------------------------------- comparisons and masks
#define FUSEDKD_LANES_COMPARE(op)                                                                \
  template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator op(FloatLanes<W> a, FloatLanes<W> b) { \
    LaneMask<W> r;                                                                               \
    FUSEDKD_LANEWISE(W, r.m, a.v op b.v, (a.v[l] op b.v[l]) ? -1 : 0);                            \
    return r;                                                                                    \
  }                                                                                              \
  template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator op(FloatLanes<W> a, float b) {        \
    return a op FloatLanes<W>(b);                                                                \
  }
FUSEDKD_LANES_COMPARE(<)
FUSEDKD_LANES_COMPARE(>)
FUSEDKD_LANES_COMPARE(==)
#undef FUSEDKD_LANES_COMPARE

template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator==(IndexLanes<W> j, long long y) {
  LaneMask<W> r;
  const std::int32_t y32 = (y < 0 || y > std::numeric_limits<std::int32_t>::max()) ? -1 : std::int32_t(y);
  FUSEDKD_LANEWISE(W, r.m, j.v == y32, (j.v[l] == y32) ? -1 : 0);
  return r;
}
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator!=(IndexLanes<W> j, long long y) { return !(j == y); }
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator>=(IndexLanes<W> j, std::int32_t k) {
  LaneMask<W> r;
  FUSEDKD_LANEWISE(W, r.m, j.v >= k, (j.v[l] >= k) ? -1 : 0);
  return r;
}
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator!(LaneMask<W> a) {
  LaneMask<W> r;
  FUSEDKD_LANEWISE(W, r.m, ~a.m, ~a.m[l]);
  return r;
}
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator&&(LaneMask<W> a, LaneMask<W> b) {
  LaneMask<W> r;
  FUSEDKD_LANEWISE(W, r.m, a.m & b.m, a.m[l] & b.m[l]);
  return r;
}
// Whether any lane is set: the mask's 64-bit halves OR-folded (a lane shuffle for 8 lanes), then
// two extracts, instead of W lane extracts.
template <int W> FUSEDKD_LANES_INLINE bool any(LaneMask<W> a) {
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
  if constexpr (W == 4 || W == 8) {
    using Q = typename LaneStorage<long long, W / 2>::type;
    Q q;
    std::memcpy(&q, &a.m, sizeof q);
    if constexpr (W == 8) {
#if defined(__clang__)
      q |= __builtin_shufflevector(q, q, 2, 3, 0, 1);
#else
      q |= __builtin_shuffle(q, Q{2, 3, 0, 1});
#endif
    }
    return (q[0] | q[1]) != 0;
  }
#endif
  std::int32_t acc = 0;
  for (int l = 0; l < W; ++l) acc |= a.m[l];
  return acc != 0;
}

// mask ? a : b per lane.
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> select(LaneMask<W> c, FloatLanes<W> a, FloatLanes<W> b) {
  const auto ai = lanes_detail::as_int(a), bi = lanes_detail::as_int(b);
  typename LaneStorage<std::int32_t, W>::type r;
  FUSEDKD_LANEWISE(W, r, (c.m & ai) | (~c.m & bi), (c.m[l] & ai[l]) | (~c.m[l] & bi[l]));
  return lanes_detail::as_float<W>(r);
}
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> select(LaneMask<W> c, float a, FloatLanes<W> b) {
  return select(c, FloatLanes<W>(a), b);
}
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> select(LaneMask<W> c, FloatLanes<W> a, float b) {
  return select(c, a, FloatLanes<W>(b));
}
template <int W>
FUSEDKD_LANES_INLINE IndexLanes<W> select(LaneMask<W> c, IndexLanes<W> a, IndexLanes<W> b) {
  IndexLanes<W> r;
  FUSEDKD_LANEWISE(W, r.v, (c.m & a.v) | (~c.m & b.v), (c.m[l] & a.v[l]) | (~c.m[l] & b.v[l]));
  return r;
}

template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> max(FloatLanes<W> a, FloatLanes<W> b) { return select(a > b, a, b); }
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> min(FloatLanes<W> a, FloatLanes<W> b) { return select(a < b, a, b); }

// ----------------------------------------------------------------------------- exp
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> exp_(FloatLanes<W> x) {
  constexpr float kMaxArg = 88.3762626647949f;  // the largest x with round(x / ln 2) ≤ 127
  constexpr float kMinArg = -87.3365447504f;    // ln 2^-126: below, the result is flushed to 0
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;  // ln 2 = hi + lo (Cody–Waite)
  constexpr float kRound = 12582912.0f;                             // 1.5 · 2^23: x + kRound − kRound = rint(x)
  FloatLanes<W> xc = select(x < kMinArg, FloatLanes<W>(kMinArg), x);  // clamped
  xc = select(xc > kMaxArg, FloatLanes<W>(kMaxArg), xc);
  const FloatLanes<W> n = (xc * kLog2e + kRound) - kRound;
  const FloatLanes<W> r = (xc - n * kLn2Hi) - n * kLn2Lo;  // e^x = 2^n e^r
  // e^r ≈ 1 + r + r² P(r) (Cephes expf coefficients)
  FloatLanes<W> p(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  typename LaneStorage<std::int32_t, W>::type two_n;  // 2^n built in the exponent field
  FUSEDKD_LANEWISE(W, two_n, (__builtin_convertvector(n.v, typename LaneStorage<std::int32_t, W>::type) + 127) << 23,
                   (std::int32_t(n.v[l]) + 127) << 23);
  const FloatLanes<W> y = p * lanes_detail::as_float<W>(two_n);
  const FloatLanes<W> in_range = select(x < kMinArg, FloatLanes<W>(0.0f), select(x > kMaxArg, FloatLanes<W>(INFINITY), y));
  return select(x == x, in_range, x);  // NaN in, NaN out, whatever the compiler made of the clamps
}

// ----------------------------------------------------------------------------- across lanes (fixed order)
template <int W> FUSEDKD_LANES_INLINE float hsum(FloatLanes<W> a) {
  float r = a.v[0];
  for (int l = 1; l < W; ++l) r += a.v[l];
  return r;
}
template <int W> FUSEDKD_LANES_INLINE float hmax(FloatLanes<W> a) {
  float r = a.v[0];
  for (int l = 1; l < W; ++l) r = a.v[l] > r ? a.v[l] : r;
  return r;
}

// ----------------------------------------------------------------------------- loads and stores
// W consecutive elements as floats.
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> load_lanes(const float* p) {
  FloatLanes<W> r;
  std::memcpy(&r.v, p, sizeof r.v);
  return r;
}
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> load_lanes(const bfloat16_t* p) {
  typename LaneStorage<std::int32_t, W>::type u{};
  for (int l = 0; l < W; ++l) {
    std::uint16_t b;
    std::memcpy(&b, p + l, sizeof b);
    u[l] = std::int32_t(std::uint32_t(b) << 16);  // bf16 is the high half of an fp32
  }
  return lanes_detail::as_float<W>(u);
}
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> load_lanes(const half_t* p) {
  using I = typename LaneStorage<std::int32_t, W>::type;
  I h{};
  for (int l = 0; l < W; ++l) {
    std::uint16_t b;
    std::memcpy(&b, p + l, sizeof b);
    h[l] = std::int32_t(b);
  }
  // |h| shifted into an fp32's exponent/mantissa is the value times 2^-112 (exact for normal and
  // subnormal halves); inf/NaN (exponent 31) keep their mantissa under an all-ones exponent.
  I magnitude, special, sign;
  FUSEDKD_LANEWISE(W, magnitude, (h & 0x7fff) << 13, (h[l] & 0x7fff) << 13);
  FUSEDKD_LANEWISE(W, special, (h & 0x7c00) == 0x7c00, ((h[l] & 0x7c00) == 0x7c00) ? -1 : 0);
  FUSEDKD_LANEWISE(W, sign, (h & 0x8000) << 16, (h[l] & 0x8000) << 16);
  const FloatLanes<W> scaled = lanes_detail::as_float<W>(magnitude) * 5.192296858534828e33f;  // 2^112
  I bits = lanes_detail::as_int(scaled);
  FUSEDKD_LANEWISE(W, bits, (special & (magnitude | 0x7f800000)) | (~special & bits) | sign,
                   (special[l] & (magnitude[l] | 0x7f800000)) | (~special[l] & bits[l]) | sign[l]);
  return lanes_detail::as_float<W>(bits);
}

// The element types load_lanes reads.
template <class T> constexpr bool is_lane_element =
    std::is_same_v<T, float> || std::is_same_v<T, half_t> || std::is_same_v<T, bfloat16_t>;

template <int W> FUSEDKD_LANES_INLINE void store_lanes(float* p, FloatLanes<W> x) { std::memcpy(p, &x.v, sizeof x.v); }
template <class T, int W> FUSEDKD_LANES_INLINE void store_lanes(T* p, FloatLanes<W> x) {
  for (int l = 0; l < W; ++l) p[l] = from_acc<T>(x.v[l]);
}

#undef FUSEDKD_LANEWISE

}  // namespace fusedkd::cpu

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
