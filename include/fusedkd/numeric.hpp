// Element types and the few transcendental functions the losses need, for host and device.
//
// fp16 and bf16 are 16-bit storage types with the same layout as __half / __nv_bfloat16 /
// at::Half / at::BFloat16, so callers reinterpret their pointers. They are only read as float
// and written from float (round to nearest even); arithmetic always happens in acc_t<T>.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "config.hpp"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace fusedkd {

struct alignas(2) half_t { std::uint16_t bits; };
struct alignas(2) bfloat16_t { std::uint16_t bits; };

namespace detail {

FUSEDKD_HD_INLINE float bits_to_float(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

FUSEDKD_HD_INLINE std::uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

// IEEE binary16 -> binary32, exact (subnormals, inf and NaN included).
FUSEDKD_HD_INLINE float half_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) return bits_to_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return bits_to_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  if (mantissa == 0) return bits_to_float(sign);
  // Subnormal: value = mantissa * 2^-24.
  const float magnitude = float(mantissa) * 5.9604644775390625e-8f;
  return sign ? -magnitude : magnitude;
}

// binary32 -> binary16, round to nearest even, overflow to inf, NaN kept quiet.
FUSEDKD_HD_INLINE std::uint16_t float_to_half_bits(float f) {
  const std::uint32_t u = float_to_bits(f);
  const std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000u);
  const std::uint32_t abs = u & 0x7fffffffu;
  if (abs >= 0x7f800000u) return std::uint16_t(sign | (abs > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (abs >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);  // rounds past 65504
  if (abs < 0x38800000u) {                                         // result is subnormal or zero
    // Scale so that one unit of the result's last place is 1.0, then let the FPU round.
    const float scaled = bits_to_float(abs) * 16777216.0f;         // 2^24
    const float rounded = scaled + 12582912.0f - 12582912.0f;      // round-half-even to integer
    return std::uint16_t(sign | std::uint16_t(rounded));
  }
  const std::uint32_t lsb = (abs >> 13) & 1u;
  const std::uint32_t rounded = abs + 0xfffu + lsb;  // round to nearest even on bit 13
  return std::uint16_t(sign | ((rounded - 0x38000000u) >> 13));
}

FUSEDKD_HD_INLINE std::uint16_t float_to_bfloat16_bits(float f) {
  const std::uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);  // quiet NaN
  return std::uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace detail

// Read an element as its accumulation type.
FUSEDKD_HD_INLINE float to_acc(float x) { return x; }
FUSEDKD_HD_INLINE double to_acc(double x) { return x; }
FUSEDKD_HD_INLINE float to_acc(half_t x) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(x.bits));
#else
  return detail::half_bits_to_float(x.bits);
#endif
}
FUSEDKD_HD_INLINE float to_acc(bfloat16_t x) { return detail::bits_to_float(std::uint32_t(x.bits) << 16); }

// Write an accumulator value into an element type.
template <class T> struct element_from;
template <> struct element_from<float> {
  FUSEDKD_HD static float convert(float x) { return x; }
};
template <> struct element_from<double> {
  FUSEDKD_HD static double convert(double x) { return x; }
};
template <> struct element_from<half_t> {
  FUSEDKD_HD static half_t convert(float x) {
#if defined(__CUDA_ARCH__)
    return half_t{__half_as_ushort(__float2half_rn(x))};
#else
    return half_t{detail::float_to_half_bits(x)};
#endif
  }
};
template <> struct element_from<bfloat16_t> {
  FUSEDKD_HD static bfloat16_t convert(float x) {
#if defined(__CUDA_ARCH__)
    return bfloat16_t{__bfloat16_as_ushort(__float2bfloat16_rn(x))};
#else
    return bfloat16_t{detail::float_to_bfloat16_bits(x)};
#endif
  }
};
template <class T, class A> FUSEDKD_HD_INLINE T from_acc(A x) { return element_from<T>::convert(x); }

// The element type the ops write ∂loss/∂logits in for logits of type T: T itself, except float16,
// whose gradient is kept in float32. A float16 gradient stored for an upstream gradient of 1 at
// batchmean scale (1/N) falls into float16's subnormal range or flushes to 0, and the backward's
// multiplication by a loss scale (GradScaler) cannot restore the lost bits; stored in float32 and
// rounded to float16 once, after that multiplication, it is correctly rounded for any grad_output.
// bfloat16 has float32's exponent range and keeps its own type.
template <class T> struct grad_element {
  using type = T;
};
template <> struct grad_element<half_t> {
  using type = float;
};
template <class T> using grad_t = typename grad_element<T>::type;

// exp / log / -inf in the accumulation type (single-precision intrinsics on the device for float).
FUSEDKD_HD_INLINE float exp_(float x) {
#if defined(__CUDA_ARCH__)
  return ::expf(x);
#else
  return std::exp(x);
#endif
}
FUSEDKD_HD_INLINE double exp_(double x) { return ::exp(x); }
FUSEDKD_HD_INLINE float log_(float x) {
#if defined(__CUDA_ARCH__)
  return ::logf(x);
#else
  return std::log(x);
#endif
}
FUSEDKD_HD_INLINE double log_(double x) { return ::log(x); }
FUSEDKD_HD_INLINE float log1p_(float x) {
#if defined(__CUDA_ARCH__)
  return ::log1pf(x);
#else
  return std::log1p(x);
#endif
}
FUSEDKD_HD_INLINE double log1p_(double x) { return ::log1p(x); }
FUSEDKD_HD_INLINE float expm1_(float x) {
#if defined(__CUDA_ARCH__)
  return ::expm1f(x);
#else
  return std::expm1(x);
#endif
}
FUSEDKD_HD_INLINE double expm1_(double x) { return ::expm1(x); }
FUSEDKD_HD_INLINE float tanh_(float x) {
#if defined(__CUDA_ARCH__)
  return ::tanhf(x);
#else
  return std::tanh(x);
#endif
}
FUSEDKD_HD_INLINE double tanh_(double x) { return ::tanh(x); }
FUSEDKD_HD_INLINE float abs_(float x) { return ::fabsf(x); }
FUSEDKD_HD_INLINE double abs_(double x) { return ::fabs(x); }

template <class A> FUSEDKD_HD_INLINE A neg_inf() { return -A(INFINITY); }

// c ? a : b. The loss policies write their per-column branches with select so that the same
// code runs on scalars (CUDA, scalar CPU) and on SIMD lanes (cpu/lanes.hpp overloads it for masks).
template <class A> FUSEDKD_HD_FORCEINLINE A select(bool c, A a, A b) { return c ? a : b; }

}  // namespace fusedkd
