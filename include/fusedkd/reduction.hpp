// Reductions over rows, as the spec defines them.
//   batchmean: Σ_i ℓ_i / N_counted   (0 when no row counts: an empty batch or every row ignored)
//   sum:       Σ_i ℓ_i
//   none:      ℓ_i per row (ignored rows give 0)
#pragma once

#include <cstdint>
#include <string>

#include "config.hpp"
#include "error.hpp"

namespace fusedkd {

enum class Reduction : int { None = 0, Sum = 1, BatchMean = 2 };

inline Reduction parse_reduction(const std::string& name) {
  if (name == "batchmean" || name == "mean") return Reduction::BatchMean;
  if (name == "sum") return Reduction::Sum;
  if (name == "none") return Reduction::None;
  throw Error("fusedkd: reduction must be 'batchmean', 'sum' or 'none', got '" + name + "'");
}

// Factor that turns Σ_i ℓ_i into the reduced loss (and ∂ℓ_i/∂s into ∂loss/∂s).
template <class A> FUSEDKD_HD_INLINE A reduction_scale(Reduction r, std::int64_t counted_rows) {
  if (r != Reduction::BatchMean) return A(1);
  return counted_rows > 0 ? A(1) / A(counted_rows) : A(0);
}

}  // namespace fusedkd
