// The CPU rows of a row-local loss, on raw or standardized logits, and the whole loss on one thread.
#pragma once

#include <cstdint>
#include <string>

#include "../batch.hpp"
#include "../descriptor.hpp"
#include "../reduction.hpp"
#include "../standardize.hpp"
#include "row_executor.hpp"
#include "standardized_rows.hpp"

namespace fusedkd::cpu {

// Runs Loss on rows [row_begin, row_end): on the standardized rows when its parameters ask for
// logit standardization (standardizes(params)), else on the logits. Labels must have been
// validated (validate_labels).
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A, class TG>
void loss_rows(const Params& params, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels,
               const RowOutputs<A, TG>& out, std::int64_t row_begin, std::int64_t row_end) {
  if constexpr (has_logit_standardization<Params>::value) {
    if (standardizes(params)) return standardized_rows<Loss>(params, x, labels, out, row_begin, row_end);
  }
  run_rows<Loss>(params, x, labels, out, row_begin, row_end);
}

// The whole loss on one thread: validates parameters, shape and labels, counts rows, runs every
// row and reduces. Returns the reduced loss (batchmean / sum); for Reduction::None the per-row
// losses are in out.row_loss and the return value is their sum. out.grad_scale is set from the
// reduction.
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A, class TG>
A run_loss(const Params& params, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels, Reduction reduction,
           RowOutputs<A, TG> out) {
  validate(params, accumulation_of<A>());
  validate_shape<Loss<A>>(x);
  const char* label_name = label_name_of<Loss<A>>::value;
  require(!Loss<A>::uses_label || labels.data != nullptr || x.rows == 0,
          std::string(label_name) + ": this loss needs labels");
  validate_labels(labels, x.rows, x.cols, label_name);
  return run_batch<A>(reduction, x.rows, count_counted_rows(labels, x.rows), out,
                      [&](const RowOutputs<A, TG>& o) { loss_rows<Loss>(params, x, labels, o, 0, x.rows); });
}

}  // namespace fusedkd::cpu
