// The row-local losses' entry points of the type-erased API: each picks the row mode from its
// parameters and calls the instantiation of that mode (generated units, row_local_call.cuh).
#include "row_local_call.cuh"

namespace fusedkd::kernels {

namespace detail {
// Instantiated in the generated units; declared here so that this unit instantiates no kernel.
#define FUSEDKD_ROW_LOCAL_MODE(LOSS, STD) \
  extern template void row_local_call<LOSS, STD, LOSS##Params>(const LOSS##Params&, const LossCall&);
FUSEDKD_ROW_LOCAL_MODE(KD, false)
FUSEDKD_ROW_LOCAL_MODE(KD, true)
FUSEDKD_ROW_LOCAL_MODE(DKD, false)
FUSEDKD_ROW_LOCAL_MODE(DKD, true)
FUSEDKD_ROW_LOCAL_MODE(NKD, false)
FUSEDKD_ROW_LOCAL_MODE(RLD, false)
FUSEDKD_ROW_LOCAL_MODE(RLD, true)
#undef FUSEDKD_ROW_LOCAL_MODE

template <template <class> class Loss, class Params> void row_local_entry(const Params& p, const LossCall& c) {
  if constexpr (has_logit_standardization<Params>::value) {
    if (standardizes(p)) return row_local_call<Loss, true>(p, c);
  }
  row_local_call<Loss, false>(p, c);
}
}  // namespace detail

std::size_t workspace_size(const KDParams& p, const LossCall& c) { return detail::row_local_workspace<KD>(p, c); }
std::size_t workspace_size(const DKDParams& p, const LossCall& c) { return detail::row_local_workspace<DKD>(p, c); }
std::size_t workspace_size(const NKDParams& p, const LossCall& c) { return detail::row_local_workspace<NKD>(p, c); }
std::size_t workspace_size(const RLDParams& p, const LossCall& c) { return detail::row_local_workspace<RLD>(p, c); }

void kd(const KDParams& p, const LossCall& c) { detail::row_local_entry<KD>(p, c); }
void dkd(const DKDParams& p, const LossCall& c) { detail::row_local_entry<DKD>(p, c); }
void nkd(const NKDParams& p, const LossCall& c) { detail::row_local_entry<NKD>(p, c); }
void rld(const RLDParams& p, const LossCall& c) { detail::row_local_entry<RLD>(p, c); }

}  // namespace fusedkd::kernels
