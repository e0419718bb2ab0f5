// DKD on the GPU: instantiations for every supported dtype pair behind the type-erased API.
#include "api.hpp"
#include "dispatch.cuh"

namespace fusedkd::kernels {

std::size_t workspace_size(const DKDParams&, const LossCall& c) {
  std::size_t n = 0;
  detail::dispatch_pair(c.student_dtype, c.teacher_dtype, [&](auto ts, auto tt) {
    using TS = typename decltype(ts)::type;
    using TT = typename decltype(tt)::type;
    n = cuda::dkd_workspace_size<TS, TT>(c.rows, c.cols);
  });
  return n;
}

void dkd(const DKDParams& p, const LossCall& c) {
  detail::dispatch_pair(c.student_dtype, c.teacher_dtype, [&](auto ts, auto tt) {
    using TS = typename decltype(ts)::type;
    using TT = typename decltype(tt)::type;
    cuda::dkd(p, detail::logits_view<TS, TT>(c), detail::device_labels(c), c.reduction, detail::device_outputs<TS>(c),
             detail::workspace(c), detail::stream(c));
  });
}

}  // namespace fusedkd::kernels
