// CPU executor for the row-local losses on raw logits: per row, one pass gathers the loss's
// streaming statistics, a loss with a cross pass (cross_pass.hpp) makes its second pass, then one
// pass writes ∂ℓ/∂s.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "../batch.hpp"
#include "../cross_pass.hpp"
#include "../numeric.hpp"
#include "../reduction.hpp"
#include "../row.hpp"
#include "isa.hpp"
#include "lane_loops.hpp"
#include "lane_row.hpp"
#include "lanes.hpp"
#include "rld_lanes.hpp"            // LaneRow<RLD<float>>
#include "softmax_pair_lanes.hpp"   // LaneRow of the softmax-pair losses

namespace fusedkd::cpu {

// Columns per block of reduce_columns (scalar path); the SIMD path's is kLaneColumnBlock
// (lane_loops.hpp).
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

namespace detail {

// Calls row(i, s, t, g) for the rows in [row_begin, row_end) that count, with their student and
// teacher rows and gradient row (null without a gradient); an ignored row gets loss 0 and a zero
// gradient.
template <class TS, class TT, class TL, class A, class TG, class Row>
FUSEDKD_LANES_INLINE void for_each_counted_row(const LogitsView<TS, TT>& x, const LabelsView<TL>& labels,
                                               const RowOutputs<A, TG>& out, std::int64_t row_begin,
                                               std::int64_t row_end, Row&& row) {
  for (std::int64_t i = row_begin; i < row_end; ++i) {
    TG* g = out.grad ? out.grad + i * out.grad_row_stride : nullptr;
    if (labels.ignored(i)) {
      if (out.row_loss) out.row_loss[i] = A(0);
      if (g)
        for (std::int64_t j = 0; j < x.cols; ++j) g[j] = from_acc<TG>(A(0));
      continue;
    }
    row(i, x.student + i * x.student_row_stride, x.teacher ? x.teacher + i * x.teacher_row_stride : nullptr, g);
  }
}

// Scalar rows: one push per column (any accumulation type, e.g. fp64).
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A, class TG>
void run_rows_scalar(const Params& params, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels,
                     const RowOutputs<A, TG>& out, std::int64_t row_begin, std::int64_t row_end) {
  using L = Loss<A>;
  const std::int64_t C = x.cols;
  for_each_counted_row(x, labels, out, row_begin, row_end, [&](std::int64_t i, const TS* s, const TT* t_row, TG* g) {
    const TT* t = L::uses_teacher ? t_row : nullptr;
    const typename L::Context ctx(params, gather_row_input<A>(s, t, labels.label(i)));
    const typename L::Stats st = reduce_columns<typename L::Stats>(C, [&](typename L::Stats& part, std::int64_t j) {
      part.push(ctx, j, A(to_acc(s[j])), t ? A(to_acc(t[j])) : A(0));
    });
    typename L::Row r = L::finalize(ctx, st);
    if constexpr (has_cross_pass<L>::value) {
      using Cross = typename L::Cross;
      L::finish(ctx, r, reduce_columns<Cross>(C, [&](Cross& part, std::int64_t j) {
        part.push(ctx, r, j, A(to_acc(s[j])), t ? A(to_acc(t[j])) : A(0));
      }));
    }
    if (out.row_loss) out.row_loss[i] = r.loss;
    if (g)
      for (std::int64_t j = 0; j < C; ++j)
        g[j] = from_acc<TG>(out.grad_scale * L::grad(ctx, r, j, A(to_acc(s[j])), t ? A(to_acc(t[j])) : A(0)));
  });
}

// SIMD rows (fp32 accumulation): the loss's LaneRow program (lane_row.hpp) on each counted row. Rows shorter than W take the
// scalar path. Always inlined into an instruction-set-specific caller.
template <template <class> class Loss, int W, class Params, class TS, class TT, class TL, class TG>
FUSEDKD_LANES_INLINE void run_rows_lanes(const Params& params, const LogitsView<TS, TT>& x,
                                         const LabelsView<TL>& labels, const RowOutputs<float, TG>& out,
                                         std::int64_t row_begin, std::int64_t row_end) {
  using L = Loss<float>;
  const std::int64_t C = x.cols;
  if (C < W) return run_rows_scalar<Loss>(params, x, labels, out, row_begin, row_end);
  std::vector<float> scratch(out.grad ? std::size_t(kLaneRowScratchPerColumn * C) : 0);
  for_each_counted_row(x, labels, out, row_begin, row_end, [&](std::int64_t i, const TS* s, const TT* t, TG* g)
                                                              FUSEDKD_LANES_INLINE_LAMBDA {
    const typename L::Context ctx(params, gather_row_input<float>(s, t, labels.label(i)));
    const auto load_s = [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA { return load_lanes<W>(s + j); };
    const auto load_t = [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA {
      if constexpr (L::uses_teacher)
        return load_lanes<W>(t + j);
      else
        return FloatLanes<W>(0.0f);  // a teacher-free loss reads no teacher
    };
    const typename L::Row r = LaneRow<L>::template run<W>(ctx, C, load_s, load_t, g, out.grad_scale, scratch.data());
    if (out.row_loss) out.row_loss[i] = r.loss;
  });
}

#if FUSEDKD_CPU_AVX2_DISPATCH
template <template <class> class Loss, class... Args> void run_rows_avx2(const Args&... args) {
  with_avx2_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA { run_rows_lanes<Loss, decltype(w)::value>(args...); });
}
#endif
template <template <class> class Loss, class... Args> void run_rows_baseline(const Args&... args) {
  with_baseline_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA { run_rows_lanes<Loss, decltype(w)::value>(args...); });
}

}  // namespace detail

// Runs Loss on rows [row_begin, row_end). Labels must have been validated (validate_labels).
// fp32 accumulation takes the SIMD path (AVX2 when the CPU has it, else 128-bit lanes), fp64 the
// scalar one.
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A, class TG>
void run_rows(const Params& params, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels,
              const RowOutputs<A, TG>& out, std::int64_t row_begin, std::int64_t row_end) {
  if constexpr (std::is_same_v<A, float> && is_lane_element<TS> && is_lane_element<TT>) {
    detail::with_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA {
      detail::run_rows_lanes<Loss, decltype(w)::value>(params, x, labels, out, row_begin, row_end);
    });
  } else {
    detail::run_rows_scalar<Loss>(params, x, labels, out, row_begin, row_end);
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

}  // namespace fusedkd::cpu
