// Definitions of the row loops declared in cpu_rows.hpp, included only by the generated
// instantiation units (cmake/FusedkdTorch.cmake writes one per loss and student dtype, holding
// `template struct CpuRows<...>;` lines for each valid teacher and label type). No torch header.
#pragma once

#include "cpu_rows.hpp"

namespace fusedkd::binding {

template <template <class> class Loss, class TS, class TT, class TL>
void CpuRows<Loss, TS, TT, TL>::run(const typename Loss<A>::Params& params, const LogitsView<TS, TT>& x,
                                    const LabelsView<TL>& labels, const RowOutputs<A, grad_t<TS>>& out, std::int64_t begin,
                                    std::int64_t end) {
  cpu::loss_rows<Loss>(params, x, labels, out, begin, end);
}

template <class TS, class TL>
void CpuUSKDRows<TS, TL>::stats(const USKDParams& params, const cpu::StudentWeakView<TS, TS>& x,
                                const LabelsView<TL>& labels, USKDRowStats<A>* stats, std::int64_t begin,
                                std::int64_t end) {
  cpu::uskd_stats_rows(params, x, labels, stats, begin, end);
}

template <class TS, class TL>
void CpuUSKDRows<TS, TL>::rows(const USKDParams& params, const cpu::StudentWeakView<TS, TS>& x,
                               const LabelsView<TL>& labels, const USKDRowStats<A>* stats, A mean_u,
                               const cpu::USKDOutputs<A, grad_t<TS>>& out, std::int64_t begin, std::int64_t end) {
  cpu::uskd_rows(params, x, labels, stats, mean_u, out, begin, end);
}

}  // namespace fusedkd::binding
