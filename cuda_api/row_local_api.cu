// The row-local losses' entry points of the type-erased API (api.hpp), one pair per loss of the
// registry: each picks the row mode from its parameters and calls that mode's instantiation (the
// generated units, row_local_call.cuh); this unit instantiates no kernel.
#include "row_local_call.cuh"

namespace fusedkd::kernels {

namespace detail {
#define FUSEDKD_EXTERN_MODES(L)                                                             \
  extern template void row_local_call<L, false>(const L<float>::Params&, const LossCall&); \
  extern template void row_local_call<L, true>(const L<float>::Params&, const LossCall&);
FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_EXTERN_MODES)
#undef FUSEDKD_EXTERN_MODES
}  // namespace detail

template <template <class> class Loss>
std::size_t workspace_size(const typename Loss<float>::Params& p, const LossCall& c) {
  return detail::RowLocalEntry<Loss>::workspace_size(p, c);
}
template <template <class> class Loss> void run(const typename Loss<float>::Params& p, const LossCall& c) {
  detail::RowLocalEntry<Loss>::run(p, c);
}

#define FUSEDKD_INSTANTIATE_ENTRY(L)                                                 \
  template std::size_t workspace_size<L>(const L<float>::Params&, const LossCall&); \
  template void run<L>(const L<float>::Params&, const LossCall&);
FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_INSTANTIATE_ENTRY)
#undef FUSEDKD_INSTANTIATE_ENTRY

}  // namespace fusedkd::kernels
