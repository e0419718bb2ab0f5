// The CPU executor's row loops as seen by the torch ops (ops_cpu.cpp): declarations only.
//
// The loops are template instantiations of the header-only executor (one per loss, student,
// teacher and label type, each in an AVX2 and a baseline flavour) and make up nearly all of the
// extension's compile time. They are defined in cpu_rows_impl.hpp and explicitly instantiated in
// generated translation units, one per loss and student dtype (cmake/FusedkdTorch.cmake), so that
// they compile in parallel. ops_cpu.cpp sees only these declarations and never instantiates a loop
// itself; the code instantiated is the same template code as a call of cpu::run_rows & co. from
// the op would instantiate.
//
// Only the dtype pairs the ops accept (check_pair in checks.hpp) are instantiated:
// {float32, float16, bfloat16} x {float32, float16, bfloat16} and float64 x float64; USKD: the
// weak logits in the student's dtype. Labels: int64 and int32 (KD has none: int64 only).
#pragma once

#include <cstdint>

#include <fusedkd/fusedkd.hpp>

namespace fusedkd::binding {

// Rows [begin, end) of a row-local loss: cpu::loss_rows<Loss> (raw or standardized logits).
template <template <class> class Loss, class TS, class TT, class TL> struct CpuRows {
  using A = acc_t<TS>;
  static void run(const typename Loss<A>::Params& params, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels,
                  const RowOutputs<A, grad_t<TS>>& out, std::int64_t begin, std::int64_t end);
};

// USKD's two passes over rows [begin, end): cpu::uskd_stats_rows and cpu::uskd_rows.
template <class TS, class TL> struct CpuUSKDRows {
  using A = acc_t<TS>;
  static void stats(const USKDParams& params, const cpu::StudentWeakView<TS, TS>& x, const LabelsView<TL>& labels,
                    USKDRowStats<A>* stats, std::int64_t begin, std::int64_t end);
  static void rows(const USKDParams& params, const cpu::StudentWeakView<TS, TS>& x, const LabelsView<TL>& labels,
                   const USKDRowStats<A>* stats, A mean_u, const cpu::USKDOutputs<A, grad_t<TS>>& out, std::int64_t begin,
                   std::int64_t end);
};

}  // namespace fusedkd::binding
