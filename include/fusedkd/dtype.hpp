// Element types at run time and the one dispatch to the templates: the torch ops (bindings/) and
// the compiled CUDA API (cuda_api/) both map their runtime dtype here. Only the supported logit
// pairs are instantiated: float64 with float64, and float32 / float16 / bfloat16 with each other.
#pragma once

#include <string>

#include "error.hpp"
#include "numeric.hpp"

namespace fusedkd {

// Element types of logits (and of gradients: the student's, float32 for float16, grad_t).
enum class DType : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
  }
  return "an unknown dtype";
}

template <class T> struct Tag {
  using type = T;
};

// f(Tag<T>{}) for the element type of t; name: the argument, for the error.
template <class F> void dispatch_dtype(DType t, const char* name, F&& f) {
  switch (t) {
    case DType::Float32: return f(Tag<float>{});
    case DType::Float64: return f(Tag<double>{});
    case DType::Float16: return f(Tag<half_t>{});
    case DType::BFloat16: return f(Tag<bfloat16_t>{});
  }
  fail(std::string(name) + ": unsupported dtype");
}

// f(Tag<TS>{}, Tag<TT>{}) for a supported (student, second) pair; second_name: the second
// logits' argument, for the errors.
template <class F> void dispatch_logit_pair(DType s, DType t, const char* second_name, F&& f) {
  const bool s64 = s == DType::Float64, t64 = t == DType::Float64;
  require(s64 == t64, std::string(second_name) + " is " + dtype_name(t) + " but student_logits is " + dtype_name(s) +
                          ": float64 inputs must both be float64");
  if (s64) return f(Tag<double>{}, Tag<double>{});
  auto narrow = [](DType d, const char* name, auto&& g) {
    switch (d) {
      case DType::Float32: return g(Tag<float>{});
      case DType::Float16: return g(Tag<half_t>{});
      case DType::BFloat16: return g(Tag<bfloat16_t>{});
      default: fail(std::string(name) + ": unsupported dtype");
    }
  };
  narrow(s, "student_logits", [&](auto ts) { narrow(t, second_name, [&](auto tt) { f(ts, tt); }); });
}

}  // namespace fusedkd
