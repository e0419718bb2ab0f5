// Named single-threaded CPU entry points of the C++ API.
//
//   float loss = fusedkd::cpu::dkd(params, logits, labels, Reduction::BatchMean, outputs);
//
// Each validates its arguments (throwing fusedkd::Error), writes per-row losses and the scaled
// gradient where outputs asks for them, and returns the reduced loss.
#pragma once

#include "../losses/dkd.hpp"
#include "../losses/kd.hpp"
#include "row_executor.hpp"

namespace fusedkd::cpu {

template <class TS, class TT, class A, class TG>
A kd(const KDParams& p, const LogitsView<TS, TT>& x, Reduction r, const RowOutputs<A, TG>& out) {
  return run_loss<KD>(p, x, LabelsView<std::int64_t>{}, r, out);
}

template <class TS, class TT, class TL, class A, class TG>
A dkd(const DKDParams& p, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels, Reduction r,
      const RowOutputs<A, TG>& out) {
  require(labels.data != nullptr || x.rows == 0, "target: DKD needs labels");
  return run_loss<DKD>(p, x, labels, r, out);
}

}  // namespace fusedkd::cpu
