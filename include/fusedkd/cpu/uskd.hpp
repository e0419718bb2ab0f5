// CPU executor for USKD (not row-local): three phases, the first and last over row ranges so a
// caller can run them in parallel (each row is written by one thread; results do not depend on
// the split).
//
//   validate_labels(...); counted = count_counted_rows(...);
//   uskd_stats_rows(p, x, labels, stats, b, e);        // pass 1, per row range
//   A mean_u = uskd_mean_u(stats, labels, rows);       // batch mean of u over counted rows
//   uskd_rows(p, x, labels, stats, mean_u, out, b, e); // pass 2: ranking, loss, both gradients
//
// run_uskd() does all of it on one thread. fp32 accumulation runs both passes on SIMD lanes (rows
// of C ≥ W columns), fp64 the scalar path. The ranking follows uskd_rank_before (descending
// score, ties to the lower index): fp32 rows of up to kCountingRankColumnsPerLane · W columns
// count on lanes, longer ones take an LSD radix sort (rank_row, radix_sort.hpp); fp64 rows a
// comparison sort. Scratch is allocated once per call and reused across its rows.
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
#include "isa.hpp"
#include "lane_accumulators.hpp"
#include "lanes.hpp"
#include "radix_sort.hpp"
#include "row_executor.hpp"

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // wide vectors by value in functions that are always inlined
#endif

namespace fusedkd::cpu {

// The views and outputs (core, batch.hpp), under their CPU names too.
using fusedkd::StudentWeakView;
using fusedkd::USKDOutputs;
using fusedkd::validate_uskd_shape;

namespace detail {

// An ignored row: loss 0 and zero gradients.
template <class A, class TG> void zero_uskd_row(const USKDOutputs<A, TG>& out, std::int64_t i, std::int64_t C) {
  if (out.row_loss) out.row_loss[i] = A(0);
  if (out.grad_student) {
    TG* gs = out.grad_student + i * out.grad_student_row_stride;
    for (std::int64_t j = 0; j < C; ++j) gs[j] = from_acc<TG>(A(0));
  }
  if (out.grad_weak) {
    TG* gw = out.grad_weak + i * out.grad_weak_row_stride;
    for (std::int64_t j = 0; j < C; ++j) gw[j] = from_acc<TG>(A(0));
  }
}

// Calls row(i, s, w, y) for the counted rows in [row_begin, row_end) with their student and weak
// rows and label, and ignored(i) for the others.
template <class TS, class TW, class TL, class Ignored, class Row>
FUSEDKD_LANES_INLINE void for_each_uskd_row(const StudentWeakView<TS, TW>& x, const LabelsView<TL>& labels,
                                            std::int64_t row_begin, std::int64_t row_end, Ignored&& ignored,
                                            Row&& row) {
  for (std::int64_t i = row_begin; i < row_end; ++i) {
    if (labels.ignored(i))
      ignored(i);
    else
      row(i, x.student + i * x.student_row_stride, x.weak + i * x.weak_row_stride, labels.label(i));
  }
}

// The gradient rows of row i (null when not asked for).
template <class A, class TG> TG* grad_student_row(const USKDOutputs<A, TG>& out, std::int64_t i) {
  return out.grad_student ? out.grad_student + i * out.grad_student_row_stride : nullptr;
}
template <class A, class TG> TG* grad_weak_row(const USKDOutputs<A, TG>& out, std::int64_t i) {
  return out.grad_weak ? out.grad_weak + i * out.grad_weak_row_stride : nullptr;
}

// Pass 1, one column at a time (any accumulation type, e.g. fp64).
template <class TS, class TW, class TL, class A>
void uskd_stats_rows_scalar(const USKDParams& params, const StudentWeakView<TS, TW>& x, const LabelsView<TL>& labels,
                            USKDRowStats<A>* stats, std::int64_t row_begin, std::int64_t row_end) {
  const std::int64_t C = x.cols;
  const auto ignored = [&](std::int64_t i) { stats[i] = USKDRowStats<A>{}; };
  for_each_uskd_row(x, labels, row_begin, row_end, ignored, [&](std::int64_t i, const TS* s, const TW* w, long long y) {
    const USKDStats<A> st = reduce_columns<USKDStats<A>>(C, [&](USKDStats<A>& part, std::int64_t j) {
      part.push(y, j, A(to_acc(s[j])), A(to_acc(w[j])));
    });
    stats[i] = uskd_row_stats(params, st, A(to_acc(s[y])), A(to_acc(w[y])), C);
  });
}

// USKDStats on W lanes: lane l sees the columns j ≡ l (mod W) of a block.
template <int W> struct LaneUSKDStats {
  using V = FloatLanes<W>;
  LaneLSE<W> s_nt;     // lse_{j≠y}(s)
  LaneLSE<W> w_nt;     // lse_{j≠y}(w)
  V sum_w = V(0.0f);   // Σ_j w_j

  // Columns j … j + W − 1, of which the lanes in keep join.
  FUSEDKD_LANES_INLINE void push(long long y, IndexLanes<W> j, V sj, V wj, LaneMask<W> keep) {
    const LaneMask<W> nt = keep && (j != y);
    s_nt.push(sj, nt);
    w_nt.push(wj, nt);
    sum_w += select(keep, wj, V(0.0f));
  }
  // Merges the lanes, in lane order, into `into`.
  FUSEDKD_LANES_INLINE void reduce_into(USKDStats<float>& into) const {
    s_nt.reduce_into(into.s_nt);
    w_nt.reduce_into(into.w_nt);
    into.sum_w += hsum(sum_w);
  }
};

// Pass 1 on SIMD lanes (fp32 accumulation): per block of kLaneColumnBlock columns the lanes merge
// in lane order into a USKDStats, and the blocks merge in order. Rows shorter than W take the
// scalar path.
template <int W, class TS, class TW, class TL>
FUSEDKD_LANES_INLINE void uskd_stats_rows_lanes(const USKDParams& params, const StudentWeakView<TS, TW>& x,
                                                const LabelsView<TL>& labels, USKDRowStats<float>* stats,
                                                std::int64_t row_begin, std::int64_t row_end) {
  const std::int64_t C = x.cols;
  if (C < W) return uskd_stats_rows_scalar(params, x, labels, stats, row_begin, row_end);
  const auto ignored = [&](std::int64_t i) { stats[i] = USKDRowStats<float>{}; };
  for_each_uskd_row(x, labels, row_begin, row_end, ignored, [&](std::int64_t i, const TS* s, const TW* w, long long y)
                                                                 FUSEDKD_LANES_INLINE_LAMBDA {
    LaneUSKDStats<W> lanes;
    USKDStats<float> st;
    for_lane_column_blocks<W>(
        C,
        [&](std::int64_t j, int first) FUSEDKD_LANES_INLINE_LAMBDA {
          lanes.push(y, IndexLanes<W>::iota(j), load_lanes<W>(s + j), load_lanes<W>(w + j), lane_keep<W>(first));
        },
        [&](std::int64_t j0) FUSEDKD_LANES_INLINE_LAMBDA {
          USKDStats<float> part;
          lanes.reduce_into(part);
          if (j0 == 0)
            st = part;
          else
            st.merge(part);
          lanes = LaneUSKDStats<W>{};
        });
    stats[i] = uskd_row_stats(params, st, to_acc(s[y]), to_acc(w[y]), C);
  });
}

}  // namespace detail

// Pass 1 on rows [row_begin, row_end): stats[i] for every non-ignored row (ignored rows get
// zeros). Labels must have been validated. fp32 accumulation runs on SIMD lanes (AVX2 when the
// CPU has it), fp64 one column at a time.
template <class TS, class TW, class TL, class A>
void uskd_stats_rows(const USKDParams& params, const StudentWeakView<TS, TW>& x, const LabelsView<TL>& labels,
                     USKDRowStats<A>* stats, std::int64_t row_begin, std::int64_t row_end) {
  if constexpr (std::is_same_v<A, float> && is_lane_element<TS> && is_lane_element<TW>) {
    detail::with_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA {
      detail::uskd_stats_rows_lanes<decltype(w)::value>(params, x, labels, stats, row_begin, row_end);
    });
  } else {
    detail::uskd_stats_rows_scalar(params, x, labels, stats, row_begin, row_end);
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

// Scratch of rank_row, kept across the rows of a call.
struct RankScratch {
  RadixSortScratch radix;           // fp32 scores: (descending key, class) items
  std::vector<double> value;        // fp64 scores
  std::vector<std::int64_t> order;  // fp64 scores: the classes in rank order
};

// Calls visit(k, j) once for every class j < C, with k = rank_j, its position under
// uskd_rank_before (descending score, ties to the lower index) of the scores score(j). Every
// score is read before the first visit; the visits come in no particular order. fp32 scores:
// the stable ascending sort of the items (descending_key(score(j)), j) (radix_sorted_positions);
// fp64 scores: std::sort with the comparator.
template <class Score, class Visit>
void rank_row(std::int64_t C, Score&& score, RankScratch& scratch, Visit&& visit) {
  using A = decltype(score(std::int64_t(0)));
  if constexpr (std::is_same_v<A, float>) {
    scratch.radix.resize(C);
    std::uint64_t* items = scratch.radix.items.data();
    for (std::int64_t j = 0; j < C; ++j) items[j] = radix_item(detail::descending_key(score(j)), std::uint32_t(j));
    radix_sorted_positions(items, scratch.radix.spare.data(), C, [&](std::int64_t k, std::uint64_t item) {
      visit(k, std::int64_t(radix_payload(item)));
    });
  } else {
    static_assert(std::is_same_v<A, double>, "USKD scores are float or double");
    std::vector<double>& value = scratch.value;
    std::vector<std::int64_t>& order = scratch.order;
    value.resize(std::size_t(C));
    order.resize(std::size_t(C));
    for (std::int64_t j = 0; j < C; ++j) {  // NaN scores (a NaN row) sorted as −inf: no UB in std::sort
      const double v = score(j);
      value[j] = v == v ? v : -double(INFINITY);
    }
    std::iota(order.begin(), order.end(), std::int64_t(0));
    std::sort(order.begin(), order.end(),
              [&](std::int64_t a, std::int64_t b) { return uskd_rank_before(value[a], a, value[b], b); });
    for (std::int64_t k = 0; k < C; ++k) visit(k, order[k]);
  }
}

namespace detail {

// Pass 2, one column at a time in rank order (any accumulation type, e.g. fp64).
template <class TS, class TW, class TL, class A, class TG>
void uskd_rows_scalar(const USKDParams& params, const StudentWeakView<TS, TW>& x, const LabelsView<TL>& labels,
                      const USKDRowStats<A>* stats, A mean_u, const USKDOutputs<A, TG>& out, std::int64_t row_begin,
                      std::int64_t row_end) {
  const std::int64_t C = x.cols;
  const double harmonic_C = harmonic_number(C);
  RankScratch scratch;
  std::vector<std::int64_t> order(static_cast<std::size_t>(C));
  const auto ignored = [&](std::int64_t i) { zero_uskd_row(out, i, C); };
  for_each_uskd_row(x, labels, row_begin, row_end, ignored, [&](std::int64_t i, const TS* s, const TW* w, long long y) {
    TG* const gs = grad_student_row(out, i);
    TG* const gw = grad_weak_row(out, i);
    const USKDRowStats<A>& st = stats[i];
    // Ranking: descending scores, ties to the lower class index (a strict total order).
    rank_row(
        C, [&](std::int64_t j) { return uskd_score(st, A(to_acc(s[j])), A(to_acc(w[j]))); }, scratch,
        [&](std::int64_t k, std::int64_t j) { order[k] = j; });
    std::int64_t rank_y = 0;
    while (order[rank_y] != y) ++rank_y;
    const USKDRow<A> r = uskd_row(params, st, y, mean_u, C, harmonic_C, rank_y);
    A nt = A(0), nt_block = A(0);  // two-level sum, as reduce_columns
    for (std::int64_t k = 0; k < C; ++k) {  // k = rank of class j
      const std::int64_t j = order[k];
      const A sj = A(to_acc(s[j]));
      const A rank1 = A(k + 1);
      if (j != y) nt_block += uskd_nt_term(r, sj, rank1);
      if ((k + 1) % kColumnBlock == 0 || k + 1 == C) {
        nt += nt_block;
        nt_block = A(0);
      }
      if (gs) gs[j] = from_acc<TG>(out.grad_scale * uskd_grad_student(r, j == y, sj, rank1));
    }
    if (out.row_loss) out.row_loss[i] = uskd_row_loss(r, st, nt);
    if (gw)
      for (std::int64_t j = 0; j < C; ++j) gw[j] = from_acc<TG>(out.grad_scale * uskd_grad_weak(r, j == y, A(to_acc(w[j]))));
  });
}

// Rows of at most kCountingRankColumnsPerLane · W columns rank their scores on lanes by counting
// (O(C²/W), branch-free), longer rows with the radix sort (O(C), a fixed cost of its histograms):
// measured per row of random scores, counting is faster below ~17 columns per lane on AVX2 and
// ~20 on 128-bit lanes.
constexpr std::int64_t kCountingRankColumnsPerLane = 16;

// Independent partial counts of lane_count: one running sum would be bound by the latency of its
// adds rather than their throughput.
constexpr int kCountingRankChains = 4;

// Per lane, #{k ∈ [k0, k1) : before(r_k)} (before maps the broadcast score r_k to a lane mask).
template <int W, class Before>
FUSEDKD_LANES_INLINE FloatLanes<W> lane_count(const float* score, std::int64_t k0, std::int64_t k1, Before&& before) {
  using V = FloatLanes<W>;
  const V one(1.0f), zero(0.0f);
  V part[kCountingRankChains];
  for (V& c : part) c = zero;
  std::int64_t k = k0;
  for (; k + kCountingRankChains <= k1; k += kCountingRankChains)
    for (int c = 0; c < kCountingRankChains; ++c) part[c] += select(before(V(score[k + c])), one, zero);
  for (; k < k1; ++k) part[0] += select(before(V(score[k])), one, zero);
  V total = part[0];
  for (int c = 1; c < kCountingRankChains; ++c) total += part[c];
  return total;
}

// rank1[j] = rank_j + 1 for the scores r_j, j < C, on lanes, by counting:
//   rank_j = #{k : r_k > r_j} + #{k < j : r_k = r_j}   (uskd_rank_before)
// For the W columns j0 … j0 + W − 1: the columns k < j0 before them are those with r_k ≥ r_j,
// j0 minus those with r_k < r_j; the columns k ≥ j0 + W those with r_k > r_j; within the W
// columns, r_k > r_j or a tie at k < j. Counts are exact in float (C < 2^24). Needs C ≥ W.
template <int W> FUSEDKD_LANES_INLINE void lane_counting_ranks(std::int64_t C, const float* score, float* rank1) {
  using V = FloatLanes<W>;
  const V one(1.0f), zero(0.0f);
  for_lane_blocks<W>(C, [&](std::int64_t j0, int) FUSEDKD_LANES_INLINE_LAMBDA {  // a remainder rewrites equal ranks
    const V rj = load_lanes<W>(score + j0);
    const V below = lane_count<W>(score, 0, j0, [&](V rk) FUSEDKD_LANES_INLINE_LAMBDA { return rk < rj; });
    const V above = lane_count<W>(score, j0 + W, C, [&](V rk) FUSEDKD_LANES_INLINE_LAMBDA { return rk > rj; });
    const IndexLanes<W> j = IndexLanes<W>::iota(j0);
    V within(0.0f);
    for (std::int64_t k = j0; k < j0 + W; ++k) {
      const V rk(score[k]);
      within += select(rk > rj, one, zero) + select((rk == rj) && (j >= std::int32_t(k + 1)), one, zero);
    }
    store_lanes(rank1 + j0, (V(float(j0 + 1)) - below) + above + within);
  });
}

// Pass 2 on SIMD lanes (fp32 accumulation), per row: the scores on lanes; their ranks, kept as
// rank_j + 1 per column (lane_counting_ranks for short rows, else rank_row); then one pass in
// column order for NT (per block of kLaneColumnBlock columns a lane sum, the blocks summed in
// order) and both gradients. Rows shorter than W take the scalar path.
template <int W, class TS, class TW, class TL, class TG>
FUSEDKD_LANES_INLINE void uskd_rows_lanes(const USKDParams& params, const StudentWeakView<TS, TW>& x,
                                          const LabelsView<TL>& labels, const USKDRowStats<float>* stats,
                                          float mean_u, const USKDOutputs<float, TG>& out, std::int64_t row_begin,
                                          std::int64_t row_end) {
  using V = FloatLanes<W>;
  const std::int64_t C = x.cols;
  if (C < W) return uskd_rows_scalar(params, x, labels, stats, mean_u, out, row_begin, row_end);
  const double harmonic_C = harmonic_number(C);
  RankScratch scratch;
  std::vector<float> score_buffer(static_cast<std::size_t>(C)), rank1_buffer(static_cast<std::size_t>(C));
  float* const score = score_buffer.data();  // r_j
  float* const rank1 = rank1_buffer.data();  // rank_j + 1
  const V scale(out.grad_scale);
  const auto ignored = [&](std::int64_t i) { zero_uskd_row(out, i, C); };
  for_each_uskd_row(x, labels, row_begin, row_end, ignored, [&](std::int64_t i, const TS* s, const TW* w, long long y) FUSEDKD_LANES_INLINE_LAMBDA {
    TG* const gs = grad_student_row(out, i);
    TG* const gw = grad_weak_row(out, i);
    const USKDRowStats<float>& st = stats[i];
    for_lane_blocks<W>(C, [&](std::int64_t j, int) FUSEDKD_LANES_INLINE_LAMBDA {  // a remainder rewrites equal scores
      // r_j = p_w,j / (1 − p_w,y + 1e-6) + log p_s,j / (1 − log p_s,y + 1e-6)
      store_lanes(score + j, uskd_score(st, load_lanes<W>(s + j), load_lanes<W>(w + j)));
    });
    long long rank_y = 0;
    if (C <= kCountingRankColumnsPerLane * W) {
      lane_counting_ranks<W>(C, score, rank1);
      rank_y = static_cast<long long>(rank1[y]) - 1;
    } else {
      rank_row(
          C, [&](std::int64_t j) { return score[j]; }, scratch,
          [&](std::int64_t k, std::int64_t j) {
            rank1[j] = float(k + 1);
            if (j == y) rank_y = k;
          });
    }
    const USKDRow<float> r = uskd_row(params, st, y, mean_u, C, harmonic_C, rank_y);
    V nt_lanes(0.0f);
    float nt = 0.0f;
    for_lane_column_blocks<W>(
        C,
        [&](std::int64_t j, int first) FUSEDKD_LANES_INLINE_LAMBDA {  // a remainder rewrites equal gradients
          const LaneMask<W> is_y = IndexLanes<W>::iota(j) == y;
          const V sj = load_lanes<W>(s + j);
          const V rank1_j = load_lanes<W>(rank1 + j);
          nt_lanes += select(lane_keep<W>(first) && !is_y, uskd_nt_term(r, sj, rank1_j), V(0.0f));
          if (gs) store_lanes(gs + j, scale * uskd_grad_student(r, is_y, sj, rank1_j));
          if (gw) store_lanes(gw + j, scale * uskd_grad_weak(r, is_y, load_lanes<W>(w + j)));
        },
        [&](std::int64_t) FUSEDKD_LANES_INLINE_LAMBDA {
          nt += hsum(nt_lanes);
          nt_lanes = V(0.0f);
        });
    if (out.row_loss) out.row_loss[i] = uskd_row_loss(r, st, nt);
  });
}

// Both passes on given lanes, for tests (uskd_stats_rows / uskd_rows pick the lanes).
#if FUSEDKD_CPU_AVX2_DISPATCH
template <class... Args> void uskd_stats_rows_avx2(const Args&... args) {
  with_avx2_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA { uskd_stats_rows_lanes<decltype(w)::value>(args...); });
}
template <class... Args> void uskd_rows_avx2(const Args&... args) {
  with_avx2_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA { uskd_rows_lanes<decltype(w)::value>(args...); });
}
#endif
template <class... Args> void uskd_stats_rows_baseline(const Args&... args) {
  with_baseline_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA { uskd_stats_rows_lanes<decltype(w)::value>(args...); });
}
template <class... Args> void uskd_rows_baseline(const Args&... args) {
  with_baseline_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA { uskd_rows_lanes<decltype(w)::value>(args...); });
}

}  // namespace detail

// Pass 2 on rows [row_begin, row_end): ranking, row loss, ∂/∂s and ∂/∂w (times grad_scale).
// fp32 accumulation runs on SIMD lanes (AVX2 when the CPU has it), fp64 one column at a time.
template <class TS, class TW, class TL, class A, class TG>
void uskd_rows(const USKDParams& params, const StudentWeakView<TS, TW>& x, const LabelsView<TL>& labels,
               const USKDRowStats<A>* stats, A mean_u, const USKDOutputs<A, TG>& out, std::int64_t row_begin,
               std::int64_t row_end) {
  if constexpr (std::is_same_v<A, float> && is_lane_element<TS> && is_lane_element<TW>) {
    detail::with_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA {
      detail::uskd_rows_lanes<decltype(w)::value>(params, x, labels, stats, mean_u, out, row_begin, row_end);
    });
  } else {
    detail::uskd_rows_scalar(params, x, labels, stats, mean_u, out, row_begin, row_end);
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

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
