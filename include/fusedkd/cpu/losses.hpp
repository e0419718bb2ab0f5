// Named single-threaded CPU entry points of the C++ API.
//
//   float loss = fusedkd::cpu::dkd(params, logits, labels, Reduction::BatchMean, outputs);
//
// Each validates its arguments (throwing fusedkd::Error), writes per-row losses and the scaled
// gradient where outputs asks for them, and returns the reduced loss.
#pragma once

#include "../losses/dkd.hpp"
#include "../losses/kd.hpp"
#include "../losses/nkd.hpp"
#include "../losses/rld.hpp"
#include "../losses/uskd.hpp"
#include "loss_rows.hpp"
#include "uskd.hpp"

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

// NKD: hard labels (for soft labels pass the argmax of each label row, as the reference does).
template <class TS, class TT, class TL, class A, class TG>
A nkd(const NKDParams& p, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels, Reduction r,
      const RowOutputs<A, TG>& out) {
  require(labels.data != nullptr || x.rows == 0, "target: NKD needs labels");
  return run_loss<NKD>(p, x, labels, r, out);
}

// RLD, with or without logit standardization (p.logit_standardization).
template <class TS, class TT, class TL, class A, class TG>
A rld(const RLDParams& p, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels, Reduction r,
      const RowOutputs<A, TG>& out) {
  require(labels.data != nullptr || x.rows == 0, "target: RLD needs labels");
  return run_loss<RLD>(p, x, labels, r, out);
}

// USKD: student and weak logits, hard labels; writes grad_student and grad_weak where asked.
template <class TS, class TW, class TL, class A, class TG>
A uskd(const USKDParams& p, const StudentWeakView<TS, TW>& x, const LabelsView<TL>& labels, Reduction r,
       const USKDOutputs<A, TG>& out) {
  return run_uskd(p, x, labels, r, out);
}

}  // namespace fusedkd::cpu
