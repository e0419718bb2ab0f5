// Scaling a computed gradient by autograd's upstream gradient, shared by the CPU and CUDA
// executors:
//   g_ij ← f_i · g_ij,   f_i = factor[i · stride]
// stride 0: one factor for the whole batch (reduction "batchmean" / "sum": f = ∂L_total/∂loss);
// stride ≥ 1: one per row (reduction "none": f_i = ∂L_total/∂ℓ_i).
// A row whose factor is exactly 1 is neither read nor written, so backward after
// loss.backward() on the loss itself (f = 1) makes no pass over [N, C].
#pragma once

#include <cstdint>

#include "config.hpp"
#include "numeric.hpp"

namespace fusedkd {

template <class A> struct RowFactors {
  const A* data = nullptr;
  std::int64_t stride = 0;  // elements between consecutive rows' factors; 0: one factor

  FUSEDKD_HD_INLINE A operator()(std::int64_t i) const { return data[i * stride]; }
};

// f · g computed in the accumulation type, rounded once to the gradient's type T.
template <class T, class A> FUSEDKD_HD_INLINE T scale_elem(T g, A f) { return from_acc<T>(A(to_acc(g)) * f); }

}  // namespace fusedkd
