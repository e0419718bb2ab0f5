// The row-local losses behind the type-erased API: one template, instantiated per loss and row
// mode (raw or standardized logits) in generated units (cuda_api/row_local_instance.cu.in,
// cmake/FusedkdTorch.cmake, from the registry), each for every supported dtype pair, so that they
// compile in parallel.
#pragma once

#include "api.hpp"
#include "dispatch.cuh"

namespace fusedkd::kernels::detail {

// Enqueues Loss on c's rows, on standardized logits when Standardized.
template <template <class> class Loss, bool Standardized>
void row_local_call(const typename Loss<float>::Params& p, const LossCall& c) {
  dispatch_pair(c.student_dtype, c.teacher_dtype, [&](auto ts, auto tt) {
    using TS = typename decltype(ts)::type;
    using TT = typename decltype(tt)::type;
    cuda::launch_row_local<Loss, Standardized>(p, logits_view<TS, TT>(c), device_labels(c), c.reduction,
                                               device_outputs<TS>(c), workspace(c), stream(c));
  });
}

// The API entry points of a row-local Loss: the row mode from its parameters (standardizes()),
// then that mode's instantiation.
template <template <class> class Loss> struct RowLocalEntry {
  using Params = typename Loss<float>::Params;
  static void run(const Params& p, const LossCall& c) {
    if constexpr (has_logit_standardization<Params>::value) {
      if (standardizes(p)) return row_local_call<Loss, true>(p, c);
    }
    row_local_call<Loss, false>(p, c);
  }
  static std::size_t workspace_size(const Params& p, const LossCall& c) {
    std::size_t n = 0;
    dispatch_pair(c.student_dtype, c.teacher_dtype, [&](auto ts, auto tt) {
      using TS = typename decltype(ts)::type;
      using TT = typename decltype(tt)::type;
      n = cuda::row_local_workspace_size<Loss, TS, TT>(c.rows, c.cols, standardizes(p));
    });
    return n;
  }
};

}  // namespace fusedkd::kernels::detail
