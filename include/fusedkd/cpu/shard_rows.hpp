// CPU executor of a row-local loss on vocabulary shards (shard.hpp): the three steps a shard runs
// around the exchanges of its partial states.
//
//   shard_stats_rows:  the statistics pass over the shard's columns → a ShardPartial per row
//   (exchange the partials: every rank gets all world × rows of them)
//   shard_cross_rows:  merge, finalize, the cross pass over the shard's columns → Cross per row
//                      (the losses with a cross pass only: JSD, TVD)
//   (exchange the cross sums)
//   shard_finish_rows: merge, finalize, finish → the row's loss, and ∂ℓ/∂s of the shard's columns
//
// Columns are pushed with their global index (vocab_start + j), so every comparison with the label
// or between indices (RLD's first arg-max on ties) is the unsharded row's. Each shard reduces its
// columns as reduce_columns does (blocks of kColumnBlock merged in order), so a row whose shards
// are single blocks of the unsharded scalar path (the scalar executor: fp64 accumulation) merges
// in exactly the unsharded order, and its loss and gradient are bit-identical to the unsharded
// run's. Scalar path only (any accumulation type). Ignored rows: partials left empty, loss 0,
// gradient 0.
#pragma once

#include <cstdint>

#include "../batch.hpp"
#include "../cross_pass.hpp"
#include "../numeric.hpp"
#include "../row.hpp"
#include "../shard.hpp"
#include "row_executor.hpp"

namespace fusedkd::cpu {

// What the three steps share: the shard's logits (its columns), the labels (global indices, or
// none), the layout, and, for a loss whose statistics pass reads them, the gathered target logits
// [rows, 2] (s_y, t_y).
template <class TS, class TT, class TL, class A> struct ShardRows {
  LogitsView<TS, TT> x;
  LabelsView<TL> labels;
  ShardLayout layout;
  const A* target_logits = nullptr;
};

namespace detail {

// Row i's input to the statistics pass: the global label, and the target logits from
// target_logits when given, else from this shard's columns when it holds y (0 otherwise; only
// finalize reads them then, from the merged partials).
template <class TS, class TT, class TL, class A>
RowInput<A> shard_row_input(const ShardRows<TS, TT, TL, A>& a, std::int64_t i, const TS* s, const TT* t,
                            bool* owns_label) {
  RowInput<A> in;
  in.y = a.labels.label(i);
  *owns_label = false;
  if (in.y < 0) return in;
  const std::int64_t k = local_label(in.y, a.layout, a.x.cols);
  *owns_label = k >= 0;
  if (a.target_logits) {
    in.s_y = a.target_logits[2 * i];
    in.t_y = a.target_logits[2 * i + 1];
  } else if (k >= 0) {
    in.s_y = A(to_acc(s[k]));
    in.t_y = t ? A(to_acc(t[k])) : A(0);
  }
  return in;
}

template <class TS, class TT, class TL, class A, class Row>
void for_each_counted_shard_row(const ShardRows<TS, TT, TL, A>& a, std::int64_t row_begin, std::int64_t row_end,
                                Row&& row) {
  for (std::int64_t i = row_begin; i < row_end; ++i) {
    if (a.labels.ignored(i)) continue;
    row(i, a.x.student + i * a.x.student_row_stride, a.x.teacher ? a.x.teacher + i * a.x.teacher_row_stride : nullptr);
  }
}

}  // namespace detail

// Step 1: the statistics of rows [row_begin, row_end) over the shard's columns into partials[i].
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A>
void shard_stats_rows(const Params& params, const ShardRows<TS, TT, TL, A>& a, ShardPartial<Loss, A>* partials,
                      std::int64_t row_begin, std::int64_t row_end) {
  using L = Loss<A>;
  const std::int64_t C = a.x.cols, j0 = a.layout.vocab_start;
  for (std::int64_t i = row_begin; i < row_end; ++i) partials[i] = ShardPartial<Loss, A>{};
  detail::for_each_counted_shard_row(a, row_begin, row_end, [&](std::int64_t i, const TS* s, const TT* t_row) {
    const TT* t = L::uses_teacher ? t_row : nullptr;
    bool owns = false;
    const RowInput<A> in = detail::shard_row_input(a, i, s, t, &owns);
    const typename L::Context ctx(params, in);
    ShardPartial<Loss, A>& p = partials[i];
    p.stats = reduce_columns<typename L::Stats>(C, [&](typename L::Stats& part, std::int64_t j) {
      part.push(ctx, j0 + j, A(to_acc(s[j])), t ? A(to_acc(t[j])) : A(0));
    });
    if (owns) {
      p.s_y = in.s_y;
      p.t_y = in.t_y;
      p.owns_label = 1;
    }
  });
}

// Step 2 (a loss with a cross pass): with the partials of all `world` shards ([world][rows]), the
// cross sums of rows [row_begin, row_end) over the shard's columns into cross[i].
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A>
void shard_cross_rows(const Params& params, const ShardRows<TS, TT, TL, A>& a, const ShardPartial<Loss, A>* parts,
                      int world, cross_t<Loss<A>>* cross, std::int64_t row_begin, std::int64_t row_end) {
  using L = Loss<A>;
  using Cross = cross_t<L>;
  const std::int64_t N = a.x.rows, C = a.x.cols, j0 = a.layout.vocab_start;
  for (std::int64_t i = row_begin; i < row_end; ++i) cross[i] = Cross{};
  if constexpr (has_cross_pass<L>::value) {
    detail::for_each_counted_shard_row(a, row_begin, row_end, [&](std::int64_t i, const TS* s, const TT* t_row) {
      const TT* t = L::uses_teacher ? t_row : nullptr;
      const MergedShardRow<Loss, A> m(params, a.labels.label(i), parts, world, N, i, nullptr);
      cross[i] = reduce_columns<Cross>(C, [&](Cross& part, std::int64_t j) {
        part.push(m.ctx, m.row, j0 + j, A(to_acc(s[j])), t ? A(to_acc(t[j])) : A(0));
      });
    });
  }
}

// Step 3: with the partials (and, with a cross pass, the cross sums) of all shards, the loss of
// rows [row_begin, row_end) into out.row_loss[i] (every shard computes the same) and, when
// out.grad is set, out.grad_scale · ∂ℓ_i/∂s of the shard's columns.
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A, class TG>
void shard_finish_rows(const Params& params, const ShardRows<TS, TT, TL, A>& a, const ShardPartial<Loss, A>* parts,
                       const cross_t<Loss<A>>* cross, int world, const RowOutputs<A, TG>& out, std::int64_t row_begin,
                       std::int64_t row_end) {
  using L = Loss<A>;
  const std::int64_t N = a.x.rows, C = a.x.cols, j0 = a.layout.vocab_start;
  for (std::int64_t i = row_begin; i < row_end; ++i) {
    TG* g = out.grad ? out.grad + i * out.grad_row_stride : nullptr;
    if (a.labels.ignored(i)) {
      out.row_loss[i] = A(0);
      if (g)
        for (std::int64_t j = 0; j < C; ++j) g[j] = from_acc<TG>(A(0));
      continue;
    }
    const MergedShardRow<Loss, A> m(params, a.labels.label(i), parts, world, N, i, cross);
    out.row_loss[i] = m.row.loss;
    if (!g) continue;
    const TS* s = a.x.student + i * a.x.student_row_stride;
    const TT* t = L::uses_teacher ? a.x.teacher + i * a.x.teacher_row_stride : nullptr;
    for (std::int64_t j = 0; j < C; ++j)
      g[j] = from_acc<TG>(out.grad_scale * L::grad(m.ctx, m.row, j0 + j, A(to_acc(s[j])), t ? A(to_acc(t[j])) : A(0)));
  }
}

}  // namespace fusedkd::cpu
