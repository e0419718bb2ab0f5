// Per-row logit standardization (RLD's / "logit standardization" preprocessing) and its backward.
//
//   x̃_j = (x_j − μ) / (ε + σ),   μ = mean_j x_j,   σ² = Σ_j (x_j − μ)² / (C − 1)   (Bessel), ε = 1e-7
//
// Given g_j = ∂ℓ/∂x̃_j, the gradient with respect to the raw row is
//   ∂ℓ/∂x_k = (g_k − mean(g)) / (σ + ε) − (Σ_j g_j (x_j − μ)) (x_k − μ) / ((σ + ε)² (C − 1) σ)
// so a row needs two extra reductions: Σ_j g_j and Σ_j g_j (x_j − μ).
// All state merges associatively (Welford / Chan for the moments, plain sums for the backward),
// so the same code serves CPU loops and CUDA warp/block reductions.
#pragma once

#include <type_traits>
#include <utility>

#include "config.hpp"
#include "numeric.hpp"

namespace fusedkd {

constexpr double kStandardizeEps = 1e-7;  // ε, as the reference

// Whether a loss's parameters carry the `logit_standardization` flag (KD, DKD, RLD), and its value.
// The executors run any such loss on the standardized rows when it is set: standardization is a
// transform of the row's inputs, never a per-loss code path.
template <class P, class = void> struct has_logit_standardization : std::false_type {};
template <class P>
struct has_logit_standardization<P, std::void_t<decltype(std::declval<const P&>().logit_standardization)>>
    : std::true_type {};
template <class P> constexpr bool standardizes(const P& p) {
  if constexpr (has_logit_standardization<P>::value)
    return bool(p.logit_standardization);
  else
    return false;
}

FUSEDKD_HD_INLINE float sqrt_(float x) {
#if defined(__CUDA_ARCH__)
  return ::sqrtf(x);
#else
  return std::sqrt(x);
#endif
}
FUSEDKD_HD_INLINE double sqrt_(double x) { return ::sqrt(x); }

// Running count, mean and Σ (x − mean)² (Welford); merge is Chan et al.'s pairwise update.
template <class A> struct RowMoments {
  long long n = 0;
  A mean = A(0);
  A m2 = A(0);

  FUSEDKD_HD void push(A x) {
    n += 1;
    const A d = x - mean;
    mean += d / A(n);
    m2 += d * (x - mean);
  }
  FUSEDKD_HD void merge(const RowMoments& o) {
    if (o.n == 0) return;
    if (n == 0) { *this = o; return; }
    const long long nn = n + o.n;
    const A d = o.mean - mean;
    const A w = A(o.n) / A(nn);
    mean += d * w;
    m2 += o.m2 + d * d * A(n) * w;
    n = nn;
  }
  FUSEDKD_HD A stdev() const { return sqrt_(m2 / A(n - 1)); }  // Bessel's correction (torch.std default)
};

// The affine map of one row, x̃ = (x − μ) / (ε + σ). The division (not a reciprocal multiply)
// matches the reference's rounding.
template <class A> struct Standardization {
  A mu, sigma, den;  // den = ε + σ
  long long cols;
  FUSEDKD_HD Standardization(const RowMoments<A>& m, A eps = A(kStandardizeEps))
      : mu(m.mean), sigma(m.stdev()), den(eps + m.stdev()), cols(m.n) {}
  template <class V> FUSEDKD_HD_FORCEINLINE V apply(V x) const { return (x - mu) / den; }  // V: A or SIMD lanes
};

// Σ_j g_j and Σ_j g_j (x_j − μ), the two row sums the backward needs.
template <class A> struct StandardizeGradSums {
  A g = A(0);
  A gx = A(0);
  FUSEDKD_HD void push(const Standardization<A>& z, A g_j, A x_j) {
    g += g_j;
    gx += g_j * (x_j - z.mu);
  }
  FUSEDKD_HD void merge(const StandardizeGradSums& o) {
    g += o.g;
    gx += o.gx;
  }
};

// ∂ℓ/∂x_k from g_k = ∂ℓ/∂x̃_k. For a constant row (σ = 0) the second term is 0/0 in the formula
// (NaN through torch's autograd of std); we take it as 0, so only (g_k − mean(g)) / ε remains.
template <class A, class V>
FUSEDKD_HD_FORCEINLINE V standardize_backward(const Standardization<A>& z, const StandardizeGradSums<A>& sums, V g_k,
                                              V x_k) {
  const V first = (g_k - sums.g / A(z.cols)) / z.den;
  if (!(z.sigma > A(0))) return first;
  return first - sums.gx * (x_k - z.mu) / (z.den * z.den * A(z.cols - 1) * z.sigma);
}

}  // namespace fusedkd
