// CPU executor for USKD (not row-local): three phases, the first and last over row ranges so a
// caller can run them in parallel (each row is written by one thread; results do not depend on
// the split).
//
//   validate_labels(...); counted = count_counted_rows(...);
//   uskd_stats_rows(p, x, labels, stats, b, e);        // pass 1, per row range
//   A mean_u = uskd_mean_u(stats, labels, rows);       // batch mean of u over counted rows
//   uskd_rows(p, x, labels, stats, mean_u, out, b, e); // pass 2: ranking, loss, both gradients
//
// run_uskd() does all of it on one thread. The ranking sorts the row's scores (O(C log C), a
// per-call scratch of C scores and C indices) with the order of uskd_rank_before.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "../batch.hpp"
#include "../losses/uskd.hpp"
#include "../numeric.hpp"
#include "../reduction.hpp"
#include "row_executor.hpp"

namespace fusedkd::cpu {

// Student logits and the weak logits w = fc(feature), both [rows, cols], columns contiguous.
template <class TS, class TW = TS> struct StudentWeakView {
  const TS* student = nullptr;
  std::int64_t student_row_stride = 0;
  const TW* weak = nullptr;
  std::int64_t weak_row_stride = 0;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
};

// Per-row losses (optional) and the two gradients (each optional), multiplied by grad_scale.
template <class A, class TG> struct USKDOutputs {
  A* row_loss = nullptr;
  TG* grad_student = nullptr;
  std::int64_t grad_student_row_stride = 0;
  TG* grad_weak = nullptr;
  std::int64_t grad_weak_row_stride = 0;
  A grad_scale = A(1);
};

template <class TS, class TW> void validate_uskd_shape(const StudentWeakView<TS, TW>& x) {
  require(x.rows >= 0, "student_logits: negative number of rows");
  require(x.cols >= 2, "student_logits: USKD needs at least 2 classes, got " + std::to_string(x.cols));
  require(x.rows == 0 || x.student != nullptr, "student_logits: null pointer");
  require(x.rows == 0 || x.weak != nullptr, "weak_logits: null pointer");
}

// Pass 1 on rows [row_begin, row_end): stats[i] for every non-ignored row (ignored rows get
// zeros). Labels must have been validated.
template <class TS, class TW, class TL, class A>
void uskd_stats_rows(const USKDParams& params, const StudentWeakView<TS, TW>& x, const LabelsView<TL>& labels,
                     USKDRowStats<A>* stats, std::int64_t row_begin, std::int64_t row_end) {
  const std::int64_t C = x.cols;
  for (std::int64_t i = row_begin; i < row_end; ++i) {
    if (labels.ignored(i)) {
      stats[i] = USKDRowStats<A>{};
      continue;
    }
    const TS* s = x.student + i * x.student_row_stride;
    const TW* w = x.weak + i * x.weak_row_stride;
    const long long y = labels.label(i);
    const USKDStats<A> st = reduce_columns<USKDStats<A>>(C, [&](USKDStats<A>& part, std::int64_t j) {
      part.push(y, j, A(to_acc(s[j])), A(to_acc(w[j])));
    });
    stats[i] = uskd_row_stats(params, st, A(to_acc(s[y])), A(to_acc(w[y])), C);
  }
}

// mean of u over the counted rows, summed in double in row order (0 when no row counts).
template <class TL, class A>
A uskd_mean_u(const USKDRowStats<A>* stats, const LabelsView<TL>& labels, std::int64_t rows) {
  double total = 0.0;
  std::int64_t n = 0;
  for (std::int64_t i = 0; i < rows; ++i) {
    if (labels.ignored(i)) continue;
    total += double(stats[i].u);
    ++n;
  }
  return n > 0 ? A(total / double(n)) : A(0);
}

namespace detail {

// A 32-bit key whose unsigned order is the descending order of float scores (−0 taken as +0).
inline std::uint32_t descending_key(float v) {
  if (v == 0.0f) v = 0.0f;
  std::uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  const std::uint32_t ascending = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return ~ascending;
}

}  // namespace detail

// order[k] = the class of rank k under uskd_rank_before (descending score, ties to the lower
// index), for score(j), j < C. fp32 scores sort as one 64-bit key (score key, index) — no
// indirection in the comparisons; fp64 scores with the comparator.
template <class Score>
void rank_row(std::int64_t C, Score&& score, std::vector<std::uint64_t>& keys, std::vector<std::int64_t>& order) {
  using A = decltype(score(std::int64_t(0)));
  if constexpr (std::is_same_v<A, float>) {
    keys.resize(std::size_t(C));
    for (std::int64_t j = 0; j < C; ++j) keys[j] = (std::uint64_t(detail::descending_key(score(j))) << 32) | std::uint64_t(j);
    std::sort(keys.begin(), keys.end());
    for (std::int64_t k = 0; k < C; ++k) order[k] = std::int64_t(keys[k] & 0xffffffffu);
  } else {
    std::vector<A> value(static_cast<std::size_t>(C));
    for (std::int64_t j = 0; j < C; ++j) value[j] = score(j);
    std::iota(order.begin(), order.end(), std::int64_t(0));
    std::sort(order.begin(), order.end(),
              [&](std::int64_t a, std::int64_t b) { return uskd_rank_before(value[a], a, value[b], b); });
  }
}

// Pass 2 on rows [row_begin, row_end): ranking, row loss, ∂/∂s and ∂/∂w (times grad_scale).
template <class TS, class TW, class TL, class A, class TG>
void uskd_rows(const USKDParams& params, const StudentWeakView<TS, TW>& x, const LabelsView<TL>& labels,
               const USKDRowStats<A>* stats, A mean_u, const USKDOutputs<A, TG>& out, std::int64_t row_begin,
               std::int64_t row_end) {
  const std::int64_t C = x.cols;
  const double harmonic_C = harmonic_number(C);
  std::vector<std::uint64_t> keys;
  std::vector<std::int64_t> order(static_cast<std::size_t>(C));
  for (std::int64_t i = row_begin; i < row_end; ++i) {
    const TS* s = x.student + i * x.student_row_stride;
    const TW* w = x.weak + i * x.weak_row_stride;
    TG* gs = out.grad_student ? out.grad_student + i * out.grad_student_row_stride : nullptr;
    TG* gw = out.grad_weak ? out.grad_weak + i * out.grad_weak_row_stride : nullptr;
    if (labels.ignored(i)) {
      if (out.row_loss) out.row_loss[i] = A(0);
      if (gs)
        for (std::int64_t j = 0; j < C; ++j) gs[j] = from_acc<TG>(A(0));
      if (gw)
        for (std::int64_t j = 0; j < C; ++j) gw[j] = from_acc<TG>(A(0));
      continue;
    }
    const long long y = labels.label(i);
    const USKDRowStats<A>& st = stats[i];
    // Ranking: descending scores, ties to the lower class index (a strict total order).
    rank_row(C, [&](std::int64_t j) { return uskd_score(st, A(to_acc(s[j])), A(to_acc(w[j]))); }, keys, order);
    std::int64_t rank_y = 0;
    while (order[rank_y] != y) ++rank_y;
    const USKDRow<A> r = uskd_row(params, st, y, mean_u, C, harmonic_C, rank_y);
    A nt = A(0), nt_block = A(0);  // two-level sum, as reduce_columns
    for (std::int64_t k = 0; k < C; ++k) {  // k = rank of class j
      const std::int64_t j = order[k];
      const A sj = A(to_acc(s[j]));
      if (j != y) nt_block += uskd_nt_term(r, sj, k);
      if ((k + 1) % kColumnBlock == 0 || k + 1 == C) {
        nt += nt_block;
        nt_block = A(0);
      }
      if (gs) gs[j] = from_acc<TG>(out.grad_scale * uskd_grad_student(r, j, sj, k));
    }
    if (out.row_loss) out.row_loss[i] = uskd_row_loss(r, st, nt);
    if (gw)
      for (std::int64_t j = 0; j < C; ++j) gw[j] = from_acc<TG>(out.grad_scale * uskd_grad_weak(r, j, A(to_acc(w[j]))));
  }
}

// The whole USKD loss on one thread. Returns the reduced loss (for Reduction::None the sum of
// the per-row losses, which are in out.row_loss); out.grad_scale is set from the reduction.
template <class TS, class TW, class TL, class A, class TG>
A run_uskd(const USKDParams& params, const StudentWeakView<TS, TW>& x, const LabelsView<TL>& labels,
           Reduction reduction, USKDOutputs<A, TG> out) {
  validate(params);
  validate_uskd_shape(x);
  require(labels.data != nullptr || x.rows == 0, "target: USKD needs labels");
  validate_labels(labels, x.rows, x.cols);
  return run_batch<A>(reduction, x.rows, count_counted_rows(labels, x.rows), out,
                      [&](const USKDOutputs<A, TG>& o) {
                        std::vector<USKDRowStats<A>> stats(std::size_t(x.rows));
                        uskd_stats_rows(params, x, labels, stats.data(), 0, x.rows);
                        const A mean_u = uskd_mean_u(stats.data(), labels, x.rows);
                        uskd_rows(params, x, labels, stats.data(), mean_u, o, 0, x.rows);
                      });
}

}  // namespace fusedkd::cpu
