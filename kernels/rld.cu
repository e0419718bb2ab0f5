// RLD on the GPU: the entry points. The two modes (raw logits, logit standardization) are
// instantiated in rld_plain.cu and rld_standardized.cu so that they compile in parallel.
#include "api.hpp"
#include "dispatch.cuh"

namespace fusedkd::kernels {

namespace detail {
void rld_plain(const RLDParams& p, const LossCall& c);
void rld_standardized(const RLDParams& p, const LossCall& c);
}  // namespace detail

std::size_t workspace_size(const RLDParams& p, const LossCall& c) {
  std::size_t n = 0;
  detail::dispatch_pair(c.student_dtype, c.teacher_dtype, [&](auto ts, auto tt) {
    using TS = typename decltype(ts)::type;
    using TT = typename decltype(tt)::type;
    n = cuda::rld_workspace_size<TS, TT>(c.rows, c.cols, p.logit_standardization);
  });
  return n;
}

void rld(const RLDParams& p, const LossCall& c) {
  if (p.logit_standardization)
    detail::rld_standardized(p, c);
  else
    detail::rld_plain(p, c);
}

}  // namespace fusedkd::kernels
