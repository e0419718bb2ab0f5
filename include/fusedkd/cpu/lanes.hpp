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
// Lanes [first, W).
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> lane_keep(int first) {
  return IndexLanes<W>::iota(0) >= std::int32_t(first);
}
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator<(IndexLanes<W> a, IndexLanes<W> b) {
  LaneMask<W> r;
  FUSEDKD_LANEWISE(W, r.m, a.v < b.v, (a.v[l] < b.v[l]) ? -1 : 0);
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
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator||(LaneMask<W> a, LaneMask<W> b) {
  LaneMask<W> r;
  FUSEDKD_LANEWISE(W, r.m, a.m | b.m, a.m[l] | b.m[l]);
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

// ----------------------------------------------------------------------------- across lanes (fixed order)
// Pairwise trees: lanes l and l + W/2 combine first, then l and l + W/4, …; the order depends only
// on W. With vector extensions each level is one add (or max) of the register's two halves.
namespace lanes_detail {
template <int W, class Op> FUSEDKD_LANES_INLINE float fold_halves(FloatLanes<W> a, Op op) {
  if constexpr (W == 1) {
    return a.v[0];
  } else {
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
    FloatLanes<W / 2> lo, hi;
    std::memcpy(&lo.v, &a.v, sizeof lo.v);
    std::memcpy(&hi.v, reinterpret_cast<const char*>(&a.v) + sizeof lo.v, sizeof hi.v);
#else
    FloatLanes<W / 2> lo, hi;
    for (int l = 0; l < W / 2; ++l) lo.v[l] = a.v[l], hi.v[l] = a.v[l + W / 2];
#endif
    return fold_halves<W / 2>(op(lo, hi), op);
  }
}
}  // namespace lanes_detail

template <int W> FUSEDKD_LANES_INLINE float hsum(FloatLanes<W> a) {
  return lanes_detail::fold_halves<W>(a, [](auto x, auto y) FUSEDKD_LANES_INLINE_LAMBDA { return x + y; });
}
template <int W> FUSEDKD_LANES_INLINE float hmax(FloatLanes<W> a) {
  return lanes_detail::fold_halves<W>(a, [](auto x, auto y) FUSEDKD_LANES_INLINE_LAMBDA { return max(x, y); });
}

// ----------------------------------------------------------------------------- loads and stores
// W consecutive elements as floats.
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> load_lanes(const float* p) {
  FloatLanes<W> r;
  std::memcpy(&r.v, p, sizeof r.v);
  return r;
}
namespace lanes_detail {
template <int W> using U16 = typename LaneStorage<std::uint16_t, W>::type;
template <int W> using U32 = typename LaneStorage<std::uint32_t, W>::type;
template <int W> using I32 = typename LaneStorage<std::int32_t, W>::type;

// These helpers write raw vectors through references: GCC warns (-Wpsabi) about a 256-bit vector
// returned by value from a template instantiated outside an AVX function.

// W 16-bit patterns widened to 32 bits (zero-extended).
template <int W> FUSEDKD_LANES_INLINE void load_u16(const void* p, U32<W>& r) {
  U16<W> h;
  std::memcpy(&h, p, sizeof h);
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
  r = __builtin_convertvector(h, U32<W>);
#else
  for (int l = 0; l < W; ++l) r[l] = h[l];
#endif
}
// The low 16 bits of W 32-bit lanes, stored.
template <int W> FUSEDKD_LANES_INLINE void store_u16(void* p, U32<W> u) {
  U16<W> h;
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
  h = __builtin_convertvector(u, U16<W>);
#else
  for (int l = 0; l < W; ++l) h[l] = std::uint16_t(u[l]);
#endif
  std::memcpy(p, &h, sizeof h);
}
template <int W> FUSEDKD_LANES_INLINE void as_u32(FloatLanes<W> a, U32<W>& r) { std::memcpy(&r, &a.v, sizeof r); }
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> u32_as_float(U32<W> a) {
  FloatLanes<W> r;
  std::memcpy(&r.v, &a, sizeof r.v);
  return r;
}
// r = c ? a : r on 32-bit patterns, c all ones or zero per lane.
template <int W> FUSEDKD_LANES_INLINE void select_bits_into(U32<W>& r, const U32<W>& c, const U32<W>& a) {
  FUSEDKD_LANEWISE(W, r, (c & a) | (~c & r), (c[l] & a[l]) | (~c[l] & r[l]));
}
}  // namespace lanes_detail

template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> load_lanes(const bfloat16_t* p) {
  lanes_detail::U32<W> u;
  lanes_detail::load_u16<W>(p, u);
  FUSEDKD_LANEWISE(W, u, u << 16, u[l] << 16);  // bf16 is the high half of an fp32
  return lanes_detail::u32_as_float<W>(u);
}
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> load_lanes(const half_t* p) {
  using I = lanes_detail::I32<W>;
  lanes_detail::U32<W> hu;
  lanes_detail::load_u16<W>(p, hu);
  I h;
  std::memcpy(&h, &hu, sizeof h);
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

// fp32 → bf16, round to nearest even, NaN kept quiet (bit for bit detail::float_to_bfloat16_bits).
template <int W> FUSEDKD_LANES_INLINE void store_lanes(bfloat16_t* p, FloatLanes<W> x) {
  using U = lanes_detail::U32<W>;
  U u;
  lanes_detail::as_u32(x, u);
  U nan, rounded, quiet;
  FUSEDKD_LANEWISE(W, nan, (U)((u & 0x7fffffffu) > 0x7f800000u), ((u[l] & 0x7fffffffu) > 0x7f800000u) ? ~0u : 0u);
  FUSEDKD_LANEWISE(W, rounded, (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, (u[l] + 0x7fffu + ((u[l] >> 16) & 1u)) >> 16);
  FUSEDKD_LANEWISE(W, quiet, (u >> 16) | 0x40u, (u[l] >> 16) | 0x40u);
  lanes_detail::select_bits_into<W>(rounded, nan, quiet);
  lanes_detail::store_u16<W>(p, rounded);
}

// fp32 → fp16, round to nearest even, overflow to inf, NaN kept quiet (bit for bit
// detail::float_to_half_bits, its four cases computed on every lane and selected).
template <int W> FUSEDKD_LANES_INLINE void store_lanes(half_t* p, FloatLanes<W> x) {
  using U = lanes_detail::U32<W>;
  constexpr std::uint32_t kAbsMask = 0x7fffffffu, kInf32 = 0x7f800000u;
  constexpr std::uint32_t kOverflow = 0x477ff000u;   // |x| that rounds past 65504
  constexpr std::uint32_t kMinNormal = 0x38800000u;  // 2^-14, the smallest normal half
  constexpr std::uint32_t kRebias = 0x38000000u;     // (127 − 15) << 23
  constexpr float kSubnormalUlp = 16777216.0f;       // 2^24: one half subnormal ulp becomes 1
  constexpr float kRound = 12582912.0f;              // 1.5 · 2^23: x + kRound − kRound = rint(x)
  U u;
  lanes_detail::as_u32(x, u);
  U sign, abs;
  FUSEDKD_LANEWISE(W, sign, (u >> 16) & 0x8000u, (u[l] >> 16) & 0x8000u);
  FUSEDKD_LANEWISE(W, abs, u & kAbsMask, u[l] & kAbsMask);
  // normal: round to nearest even on bit 13, then rebias the exponent
  U h;
  FUSEDKD_LANEWISE(W, h, (abs + 0xfffu + ((abs >> 13) & 1u) - kRebias) >> 13,
                   (abs[l] + 0xfffu + ((abs[l] >> 13) & 1u) - kRebias) >> 13);
  // subnormal or zero: the value in units of 2^-24, rounded by the FPU
  const FloatLanes<W> scaled = (lanes_detail::u32_as_float<W>(abs) * kSubnormalUlp + kRound) - kRound;
  lanes_detail::I32<W> sub_int;  // ≤ 1024 where used (a signed conversion: one instruction)
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
  sub_int = __builtin_convertvector(scaled.v, lanes_detail::I32<W>);
#else
  for (int l = 0; l < W; ++l) sub_int[l] = std::int32_t(scaled.v[l]);
#endif
  U sub, c;
  std::memcpy(&sub, &sub_int, sizeof sub);
  FUSEDKD_LANEWISE(W, c, (U)(abs < kMinNormal), (abs[l] < kMinNormal) ? ~0u : 0u);
  lanes_detail::select_bits_into<W>(h, c, sub);
  FUSEDKD_LANEWISE(W, c, (U)(abs >= kOverflow), (abs[l] >= kOverflow) ? ~0u : 0u);
  U inf_h;  // 0x7c00: the half infinity
  FUSEDKD_LANEWISE(W, inf_h, U{} + 0x7c00u, 0x7c00u);
  lanes_detail::select_bits_into<W>(h, c, inf_h);
  U special;  // inf stays inf, NaN becomes the quiet NaN 0x7e00
  FUSEDKD_LANEWISE(W, special, ((U)(abs > kInf32) & 0x200u) | 0x7c00u, ((abs[l] > kInf32) ? 0x200u : 0u) | 0x7c00u);
  FUSEDKD_LANEWISE(W, c, (U)(abs >= kInf32), (abs[l] >= kInf32) ? ~0u : 0u);
  lanes_detail::select_bits_into<W>(h, c, special);
  FUSEDKD_LANEWISE(W, h, h | sign, h[l] | sign[l]);
  lanes_detail::store_u16<W>(p, h);
}

#undef FUSEDKD_LANEWISE

}  // namespace fusedkd::cpu

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
