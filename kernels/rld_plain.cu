// RLD (raw logits) for every supported dtype pair.
#include "api.hpp"
#include "dispatch.cuh"

namespace fusedkd::kernels::detail {

void rld_plain(const RLDParams& p, const LossCall& c) {
  dispatch_pair(c.student_dtype, c.teacher_dtype, [&](auto ts, auto tt) {
    using TS = typename decltype(ts)::type;
    using TT = typename decltype(tt)::type;
    cuda::launch_row_local<RLD, false>(p, logits_view<TS, TT>(c), device_labels(c), c.reduction, device_outputs<TS>(c),
                                    workspace(c), stream(c));
  });
}

}  // namespace fusedkd::kernels::detail
