// The row-local losses (KD, DKD, NKD, RLD) behind the type-erased API: one template, instantiated
// per loss and row mode (raw or standardized logits) in generated units (cuda_api/row_local_instance.cu.in,
// cmake/FusedkdTorch.cmake), each for every supported dtype pair, so that they compile in parallel.
#pragma once

#include "api.hpp"
#include "dispatch.cuh"

namespace fusedkd::kernels::detail {

// Enqueues Loss on c's rows, on standardized logits when Standardized.
template <template <class> class Loss, bool Standardized, class Params>
void row_local_call(const Params& p, const LossCall& c) {
  dispatch_pair(c.student_dtype, c.teacher_dtype, [&](auto ts, auto tt) {
    using TS = typename decltype(ts)::type;
    using TT = typename decltype(tt)::type;
    cuda::launch_row_local<Loss, Standardized>(p, logits_view<TS, TT>(c), device_labels(c), c.reduction,
                                               device_outputs<TS>(c), workspace(c), stream(c));
  });
}

// Workspace bytes of Loss for c (the plan depends on the row mode).
template <template <class> class Loss, class Params> std::size_t row_local_workspace(const Params& p, const LossCall& c) {
  std::size_t n = 0;
  dispatch_pair(c.student_dtype, c.teacher_dtype, [&](auto ts, auto tt) {
    using TS = typename decltype(ts)::type;
    using TT = typename decltype(tt)::type;
    n = cuda::row_local_workspace_size<Loss, TS, TT>(c.rows, c.cols, standardizes(p));
  });
  return n;
}

}  // namespace fusedkd::kernels::detail
