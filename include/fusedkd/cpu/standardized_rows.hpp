// CPU executor for row-local losses run on standardized logits (any loss whose parameters set
// logit_standardization: KD, DKD, RLD).
//
// Per row: pass 1 gathers the mean and Bessel std of s and of t (RowMoments); pass 2 runs the
// loss policy on x̃ = (x − μ)/(ε + σ); with a gradient, pass 3 sums Σ g and Σ g (s − μ) with
// g = ∂ℓ/∂s̃, and pass 4 writes ∂ℓ/∂s through the standardization (standardize_backward). The
// scalar rows recompute g in passes 3 and 4 (no per-row scratch, the same plan as a GPU block);
// the SIMD rows keep g, and the exponentials behind it, in a per-thread scratch (LaneRow, lane_row.hpp).
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "../batch.hpp"
#include "../numeric.hpp"
#include "../reduction.hpp"
#include "../standardize.hpp"
#include "row_executor.hpp"

namespace fusedkd::cpu {

// The row's label and standardized target logits s̃_y, t̃_y (y < 0: none).
template <class A, class TS, class TT>
RowInput<A> standardized_row_input(const Standardization<A>& zs, const Standardization<A>& zt, const TS* s,
                                   const TT* t, long long y) {
  RowInput<A> in;
  in.y = y;
  if (y >= 0) {
    in.s_y = zs.apply(A(to_acc(s[y])));
    in.t_y = zt.apply(A(to_acc(t[y])));
  }
  return in;
}

// Runs Loss on the standardized rows [row_begin, row_end). Labels must have been validated.
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A, class TG>
void run_rows_standardized(const Params& params, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels,
                           const RowOutputs<A, TG>& out, std::int64_t row_begin, std::int64_t row_end,
                           A eps = A(kStandardizeEps)) {
  using L = Loss<A>;
  static_assert(L::uses_teacher, "run_rows_standardized standardizes a student/teacher pair");
  static_assert(!has_cross_pass<L>::value, "the standardized rows make no cross pass");
  const std::int64_t C = x.cols;
  detail::for_each_counted_row(x, labels, out, row_begin, row_end, [&](std::int64_t i, const TS* s, const TT* t, TG* g) {
    const RowMoments<A> ms = reduce_columns<RowMoments<A>>(C, [&](RowMoments<A>& m, std::int64_t j) {  // pass 1
      m.push(A(to_acc(s[j])));
    });
    const RowMoments<A> mt = reduce_columns<RowMoments<A>>(C, [&](RowMoments<A>& m, std::int64_t j) {
      m.push(A(to_acc(t[j])));
    });
    const Standardization<A> zs(ms, eps), zt(mt, eps);
    const typename L::Context ctx(params, standardized_row_input(zs, zt, s, t, labels.label(i)));
    const typename L::Stats st = reduce_columns<typename L::Stats>(C, [&](typename L::Stats& part, std::int64_t j) {
      part.push(ctx, j, zs.apply(A(to_acc(s[j]))), zt.apply(A(to_acc(t[j]))));  // pass 2
    });
    const typename L::Row r = L::finalize(ctx, st);
    if (out.row_loss) out.row_loss[i] = r.loss;
    if (!g) return;
    const StandardizeGradSums<A> sums =  // pass 3
        reduce_columns<StandardizeGradSums<A>>(C, [&](StandardizeGradSums<A>& part, std::int64_t j) {
          const A sj = A(to_acc(s[j]));
          part.push(zs, L::grad(ctx, r, j, zs.apply(sj), zt.apply(A(to_acc(t[j])))), sj);
        });
    for (std::int64_t j = 0; j < C; ++j) {  // pass 4
      const A sj = A(to_acc(s[j]));
      const A gj = L::grad(ctx, r, j, zs.apply(sj), zt.apply(A(to_acc(t[j]))));
      g[j] = from_acc<TG>(out.grad_scale * standardize_backward(zs, sums, gj, sj));
    }
  });
}

namespace detail {

// Σ_j f(j) over the row's columns on lanes (f(j) gives columns j … j + W − 1), in a fixed order.
template <int W, class F> FUSEDKD_LANES_INLINE float lane_sum(std::int64_t C, F&& f) {
  FloatLanes<W> acc(0.0f);
  for_lane_blocks<W>(C, [&](std::int64_t j, int first) FUSEDKD_LANES_INLINE_LAMBDA {
    acc += select(lane_keep<W>(first), f(j), FloatLanes<W>(0.0f));
  });
  return hsum(acc);
}

// Mean and Σ (x − mean)² of a row in two passes (load(j) gives W columns).
template <int W, class Load> FUSEDKD_LANES_INLINE RowMoments<float> lane_moments(std::int64_t C, Load&& load) {
  RowMoments<float> m;
  m.n = C;
  m.mean = lane_sum<W>(C, load) / float(C);
  m.m2 = lane_sum<W>(C, [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA {
    const FloatLanes<W> d = load(j) - m.mean;
    return d * d;
  });
  return m;
}

// Loss on standardized rows on SIMD lanes (fp32 accumulation). Pass 1 as run_rows_standardized;
// the loss and ∂ℓ/∂s̃ come from the loss's LaneRow on x̃ (each exponential once where the loss keeps them);
// pass 3 sums Σ g and Σ g (s − μ) over the kept ∂ℓ/∂s̃, and pass 4 chains them through the
// standardization. Needs C ≥ W.
template <template <class> class Loss, int W, class Params, class TS, class TT, class TL, class TG>
FUSEDKD_LANES_INLINE void run_rows_standardized_lanes(const Params& params, const LogitsView<TS, TT>& x,
                                                      const LabelsView<TL>& labels, const RowOutputs<float, TG>& out,
                                                      std::int64_t row_begin, std::int64_t row_end, float eps) {
  using L = Loss<float>;
  using V = FloatLanes<W>;
  const std::int64_t C = x.cols;
  std::vector<float> scratch(out.grad ? std::size_t((kLaneRowScratchPerColumn + 1) * C) : 0);
  for_each_counted_row(x, labels, out, row_begin, row_end, [&](std::int64_t i, const TS* s, const TT* t, TG* g)
                                                              FUSEDKD_LANES_INLINE_LAMBDA {
    const auto load_s = [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA { return load_lanes<W>(s + j); };
    const auto load_t = [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA { return load_lanes<W>(t + j); };
    const Standardization<float> zs(lane_moments<W>(C, load_s), eps), zt(lane_moments<W>(C, load_t), eps);  // pass 1
    const typename L::Context ctx(params, standardized_row_input(zs, zt, s, t, labels.label(i)));
    const auto std_s = [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA { return zs.apply(load_s(j)); };
    const auto std_t = [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA { return zt.apply(load_t(j)); };
    float* const g_std = g ? scratch.data() + kLaneRowScratchPerColumn * C : nullptr;  // ∂ℓ/∂s̃
    const typename L::Row r = LaneRow<L>::template run<W>(ctx, C, std_s, std_t, g_std, 1.0f, scratch.data());  // pass 2
    if (out.row_loss) out.row_loss[i] = r.loss;
    if (!g) return;
    const auto grad_std = [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA { return load_lanes<W>(g_std + j); };
    StandardizeGradSums<float> sums;  // pass 3
    sums.g = lane_sum<W>(C, grad_std);
    sums.gx = lane_sum<W>(C, [&](std::int64_t j) FUSEDKD_LANES_INLINE_LAMBDA { return grad_std(j) * (load_s(j) - zs.mu); });
    const V scale(out.grad_scale);
    for_lane_blocks<W>(C, [&](std::int64_t j, int first) FUSEDKD_LANES_INLINE_LAMBDA {  // pass 4
      // only the remainder's new lanes: g may be the student row itself (store_lanes_from)
      store_lanes_from(g + j, scale * standardize_backward(zs, sums, grad_std(j), load_s(j)), first);
    });
  });
}

}  // namespace detail

// Runs Loss on the standardized rows [row_begin, row_end): the SIMD path for fp32 accumulation
// when C ≥ W, else the scalar one. The same contract as run_rows.
template <template <class> class Loss, class Params, class TS, class TT, class TL, class A, class TG>
void standardized_rows(const Params& params, const LogitsView<TS, TT>& x, const LabelsView<TL>& labels,
                       const RowOutputs<A, TG>& out, std::int64_t row_begin, std::int64_t row_end) {
  if constexpr (std::is_same_v<A, float> && is_lane_element<TS> && is_lane_element<TT>) {
    if (x.cols >= kAvx2Lanes) {
      detail::with_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA {
        detail::run_rows_standardized_lanes<Loss, decltype(w)::value>(params, x, labels, out, row_begin, row_end,
                                                                      float(kStandardizeEps));
      });
      return;
    }
  }
  run_rows_standardized<Loss>(params, x, labels, out, row_begin, row_end);
}

}  // namespace fusedkd::cpu
