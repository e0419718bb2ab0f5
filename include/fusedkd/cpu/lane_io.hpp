// Loads and stores of SIMD lanes: W consecutive float32 / float16 / bfloat16 elements as floats,
// and floats written back rounded to nearest even (float16 with subnormals, infinities and a quiet
// NaN, as the scalar conversions in numeric.hpp).
#pragma once

#include <cstdint>
#include <cstring>

#include "lane_vector.hpp"

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // wide vectors by value in functions that are always inlined
#endif

namespace fusedkd::cpu {

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

// Lanes [first, W) of x to p + first … p + W − 1 (first = 0: store_lanes). The remainder step of a
// row (the W columns ending at C, whose first lanes a full step already wrote) stores only its new
// lanes, so a gradient written in place over the logits it reads never has its written part read
// back as logits and rewritten. The per-lane conversion equals store_lanes' (tested).
template <int W, class T> FUSEDKD_LANES_INLINE void store_lanes_from(T* p, FloatLanes<W> x, int first) {
  if (first == 0) return store_lanes(p, x);
  float v[W];
  std::memcpy(v, &x.v, sizeof v);
  for (int l = first; l < W; ++l) p[l] = from_acc<T>(v[l]);
}

}  // namespace fusedkd::cpu

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
