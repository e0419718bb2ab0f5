// CPU executor for the row-local losses (KD, DKD, NKD, RLD without standardization):
// per row, one pass gathers the loss's streaming statistics, then one pass writes ∂ℓ/∂s.
#pragma once

#include <cstdint>
#include <vector>

#include "../batch.hpp"
#include "../numeric.hpp"
#include "../reduction.hpp"

namespace fusedkd::cpu {

// Columns per block of reduce_columns.
constexpr std::int64_t kColumnBlock = 256;

// Reduces columns [0, C) into a mergeable state S: push(part, j) for the columns of each block
// of kColumnBlock into a fresh state, then merge the blocks in order. A single sequential float
// sum of many terms behind a dominant one drops each term below half an ulp of the running sum
// (a systematic underestimate, ~1e-4 relative at C = 50000); the two-level sum keeps the error
// at the level of a GPU tree reduction. Deterministic: the blocking depends only on C.
template <class S, class Push> S reduce_columns(std::int64_t C, Push&& push) {
  S total;
  for (std::int64_t j0 = 0; j0 < C; j0 += kColumnBlock) {
    S part;
    const std::int64_t j1 = j0 + kColumnBlock < C ? j0 + kColumnBlock : C;
    for (std::int64_t j = j0; j < j1; ++j) push(part, j);
    if (j0 == 0)
      total = part;
    else
      total.merge(part);
  }
  return total;
}

// Runs Loss on rows [row_begin, row_end). Labels must have been validated (validate_labels).
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A, class TG>
void run_rows(const Params& params, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels,
              const RowOutputs<A, TG>& out, std::int64_t row_begin, std::int64_t row_end) {
  using L = Loss<A>;
  const std::int64_t C = x.cols;
  for (std::int64_t i = row_begin; i < row_end; ++i) {
    const TS* s = x.student + i * x.student_row_stride;
    const TT* t = L::uses_teacher ? x.teacher + i * x.teacher_row_stride : nullptr;
    TG* g = out.grad ? out.grad + i * out.grad_row_stride : nullptr;
    if (labels.ignored(i)) {
      if (out.row_loss) out.row_loss[i] = A(0);
      if (g)
        for (std::int64_t j = 0; j < C; ++j) g[j] = from_acc<TG>(A(0));
      continue;
    }
    const typename L::Context ctx(params, gather_row_input<A>(s, t, labels.label(i)));
    const typename L::Stats st = reduce_columns<typename L::Stats>(C, [&](typename L::Stats& part, std::int64_t j) {
      part.push(ctx, j, A(to_acc(s[j])), t ? A(to_acc(t[j])) : A(0));
    });
    const typename L::Row r = L::finalize(ctx, st);
    if (out.row_loss) out.row_loss[i] = r.loss;
    if (g)
      for (std::int64_t j = 0; j < C; ++j)
        g[j] = from_acc<TG>(out.grad_scale * L::grad(ctx, r, j, A(to_acc(s[j])), t ? A(to_acc(t[j])) : A(0)));
  }
}

// Σ_i row_loss[i] in a fixed order, accumulated in double.
template <class A> double sum_rows(const A* row_loss, std::int64_t rows) {
  double total = 0.0;
  for (std::int64_t i = 0; i < rows; ++i) total += double(row_loss[i]);
  return total;
}

// What every whole-batch run does around its row passes: sets out.grad_scale from the reduction,
// gives the rows loss storage when the caller asked for none, runs `rows(out)` on all rows and
// returns the reduced loss (for Reduction::None the sum of the row losses). Out is RowOutputs or
// USKDOutputs (both have row_loss and grad_scale).
template <class A, class Out, class Rows>
A run_batch(Reduction reduction, std::int64_t rows, std::int64_t counted, Out out, Rows&& run) {
  if (reduction != Reduction::None) out.grad_scale = reduction_scale<A>(reduction, counted);
  std::vector<A> scratch;
  if (!out.row_loss) {
    scratch.resize(std::size_t(rows));
    out.row_loss = scratch.data();
  }
  run(out);
  return A(sum_rows(out.row_loss, rows) * double(reduction_scale<A>(reduction, counted)));
}

// The whole loss on one thread: validates labels, counts rows, runs every row and reduces.
// Returns the reduced loss (batchmean / sum); for Reduction::None the per-row losses are in
// out.row_loss and the return value is their sum. out.grad_scale is set from the reduction.
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A, class TG>
A run_loss(const Params& params, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels, Reduction reduction,
           RowOutputs<A, TG> out) {
  validate(params);
  validate_shape<Loss<A>>(x);
  validate_labels(labels, x.rows, x.cols);
  return run_batch<A>(reduction, x.rows, count_counted_rows(labels, x.rows), out,
                      [&](const RowOutputs<A, TG>& o) { run_rows<Loss>(params, x, labels, o, 0, x.rows); });
}

}  // namespace fusedkd::cpu
