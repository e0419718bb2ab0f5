// Checks shared by the loss parameter structs.
#pragma once

#include <cmath>
#include <cstdio>
#include <string>

#include "error.hpp"

namespace fusedkd {

// v as the messages print it (%g: 4, 0.005, inf, nan).
inline std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

inline void require_finite(double v, const char* name) {
  require(std::isfinite(v), std::string(name) + " must be finite, got " + number_text(v));
}

// A weight in [0, 1] (the JSD family's β).
inline void require_unit_interval(double v, const char* name) {
  require(v >= 0.0 && v <= 1.0, std::string(name) + " must be in [0, 1], got " + number_text(v));
}

// A softcap c: 0 (none) or a positive finite number.
inline void require_softcap(double v, const char* name) {
  require(std::isfinite(v) && v >= 0.0,
          std::string(name) + " must be a positive finite number (or 0 / None: no capping), got " + number_text(v));
}

// The accumulation type a loss runs in: fp32 for fp32/fp16/bf16 logits, fp64 for fp64.
enum class Accumulation { Float, Double };
template <class A> constexpr Accumulation accumulation_of() {
  return sizeof(A) == sizeof(double) ? Accumulation::Double : Accumulation::Float;
}

// Temperatures τ (and RLD's α_τ) at which the losses are well conditioned in the accumulation type.
// Above: τ²·KL is computed as τ² times a difference of O(log C) terms whose result is O(1/τ²) —
// an absolute error of ε·log C·τ², so at fp32 τ = 1e3 KD is off by 0.1–1%, at τ = 1e4 by
// 2–50%, at τ = 1e20 NaN (τ² overflows); fp64 reaches the same error at ~2·10⁴ times the
// temperature. Below: x/τ overflows for ordinary logits and τ² underflows (τ = 1e-45 is NaN in
// fp32). The range keeps the batch loss within ~1e-4 relative of fp64 on N(0, 3²) logits at
// C = 5 … 1000 (tests/cpp/test_precision.cpp): fp32 accumulation 1e-4 ≤ τ ≤ 100, fp64
// 1e-8 ≤ τ ≤ 1e6. Temperatures outside are rejected, naming the argument.
struct TemperatureRange {
  double lo, hi;
};
constexpr TemperatureRange temperature_range(Accumulation a) {
  return a == Accumulation::Float ? TemperatureRange{1e-4, 1e2} : TemperatureRange{1e-8, 1e6};
}

inline void require_temperature(double v, const char* name, Accumulation acc = Accumulation::Double) {
  require(std::isfinite(v) && v > 0.0,
          std::string(name) + " must be a positive finite number, got " + number_text(v));
  const TemperatureRange r = temperature_range(acc);
  if (!(v >= r.lo && v <= r.hi)) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s must be in [%g, %g] for %s logits (the range where the loss is well conditioned), got %g",
                  name, r.lo, r.hi, acc == Accumulation::Float ? "float32/float16/bfloat16" : "float64", v);
    fail(buf);
  }
}

}  // namespace fusedkd
