// CPU executor of top-k teacher KD (losses/topk_kd.hpp): per counted row, one pass over the
// student's V logits (lse of z = cap(s)/τ; SIMD lanes for fp32 accumulation), the k gathers at the
// teacher's indices, then one pass writing ∂ℓ/∂s_j = (1/τ) cap'(s_j) q_j c_out over the whole row and
// the k entries of K rewritten with q_j c_in − w_j. No [N, V] teacher tensor exists.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "../batch.hpp"
#include "../losses/topk_kd.hpp"
#include "../numeric.hpp"
#include "isa.hpp"
#include "lane_io.hpp"
#include "lane_loops.hpp"
#include "lane_math.hpp"
#include "lane_row.hpp"
#include "lanes.hpp"
#include "row_executor.hpp"

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace fusedkd {

// Every index of a counted row is in [0, V) and appears once in its row; throws naming the first bad
// row otherwise. Ignored rows (padding) are not read.
template <class TS, class A, class TI, class TL>
void validate_topk_indices(const TopKView<TS, A, TI>& x, const LabelsView<TL>& labels) {
  std::vector<std::uint64_t> seen(std::size_t((x.cols + 63) / 64), 0);
  for (std::int64_t i = 0; i < x.rows; ++i) {
    if (labels.ignored(i)) continue;
    const TI* idx = x.indices + i * x.indices_row_stride;
    std::int64_t bad = -1;
    bool duplicate = false;
    for (std::int64_t k = 0; k < x.k && bad < 0; ++k) {
      const std::int64_t j = std::int64_t(idx[k]);
      if (j < 0 || j >= x.cols) {
        bad = k;
      } else if (seen[std::size_t(j >> 6)] >> (j & 63) & 1u) {
        bad = k;
        duplicate = true;
      } else {
        seen[std::size_t(j >> 6)] |= std::uint64_t(1) << (j & 63);
      }
    }
    for (std::int64_t k = 0; k < x.k; ++k) {  // clear what this row set
      const std::int64_t j = std::int64_t(idx[k]);
      if (j >= 0 && j < x.cols) seen[std::size_t(j >> 6)] &= ~(std::uint64_t(1) << (j & 63));
    }
    if (bad >= 0) {
      const std::string where = " at row " + std::to_string(i) + ", entry " + std::to_string(bad);
      if (duplicate)
        fail("teacher_topk_indices: index " + std::to_string(std::int64_t(idx[bad])) + where +
             " appears twice in its row (the indices of a row must be distinct)");
      fail("teacher_topk_indices: index " + std::to_string(std::int64_t(idx[bad])) + where + " is out of range [0, " +
           std::to_string(x.cols) + ")");
    }
  }
}

namespace cpu {
namespace detail {

// The student's lse(z) as a statistics state (scalar, or per SIMD lane for lane_row_reduce).
template <class V> struct TopKStudentLSE {
  LSEState<V> s;
  template <class O, class F> FUSEDKD_HD_FORCEINLINE void zip(O& o, F f) { f(s, o.s); }
  FUSEDKD_HD void merge(const TopKStudentLSE& o) { s.merge(o.s); }
};

// One counted row (V columns). `lse_pass(ctx)` returns the student's OnlineLSE over z; `dense_grad(ctx, n, c)`
// writes g_j = c · (1/τ) cap'(s_j) q_j for every j (the two passes over V, scalar or SIMD).
template <class A, class TS, class TI, class TG, class LsePass, class DenseGrad>
FUSEDKD_LANES_INLINE A topk_row(const TopKKDParams& p, const TokenScale<A>& ctx, const TS* s, std::int64_t V, const A* lp,
                                const TI* idx, std::int64_t k, TG* g, A grad_scale, std::uint64_t* mark,
                                LsePass&& lse_pass, DenseGrad&& dense_grad) {
  LogNormalizer<A> n = log_normalizer(lse_pass());
  n.log_z += nan_unless_finite(n.lse());  // a NaN or +inf logit, or no finite one: the row is NaN
  TopKGather<A> gather;
  for (std::int64_t e = 0; e < k; ++e) {
    const A z = ctx.z(A(to_acc(s[std::int64_t(idx[e])])));
    gather.push(z, (z - n.m) - n.log_z, lp[e]);
  }
  // 1 − Q_K: −expm1(log Q_K), or, for a ghost bucket with little mass, Σ_{j∉K} e^{z_j − m} / z summed
  // exactly over the complement (in double; the indices marked in `mark`, cleared after).
  const A log_q_k = topk_log_q_k(n, gather);
  A one_minus_q = -expm1_(log_q_k);
  if (TopKTail(p.tail) == TopKTail::Ghost && one_minus_q < A(kTopKExactTailBelow) && n.log_z == n.log_z) {
    for (std::int64_t e = 0; e < k; ++e) mark[std::size_t(idx[e] >> 6)] |= std::uint64_t(1) << (idx[e] & 63);
    double rest = 0.0;
    for (std::int64_t j = 0; j < V; ++j)
      if (!(mark[std::size_t(j >> 6)] >> (j & 63) & 1u)) rest += double(fusedkd::exp_(ctx.z(A(to_acc(s[j]))) - n.m));
    for (std::int64_t e = 0; e < k; ++e) mark[std::size_t(idx[e] >> 6)] = 0;
    one_minus_q = A(rest / double(fusedkd::exp_(n.log_z)));
  }
  const TopKRow<A> r = topk_finalize(TopKTail(p.tail), n, gather, one_minus_q);
  if (g) {
    dense_grad(n, grad_scale * r.c_out);
    for (std::int64_t e = 0; e < k; ++e) {  // the entries of K: q_j c_in − w_j
      const std::int64_t j = std::int64_t(idx[e]);
      A dz;
      const A z = ctx.z(A(to_acc(s[j])), dz);
      g[j] = from_acc<TG>(grad_scale * dz * topk_grad_in(r, n.prob(z), topk_weight(r, lp[e])));
    }
  }
  return r.loss;
}

// Rows [row_begin, row_end); lanes of width W (0: scalar).
template <int W, class TS, class A, class TI, class TL, class TG>
FUSEDKD_LANES_INLINE void topk_kd_rows_impl(const TopKKDParams& p, const TopKView<TS, A, TI>& x,
                                            const LabelsView<TL>& labels, const RowOutputs<A, TG>& out,
                                            std::int64_t row_begin, std::int64_t row_end) {
  const std::int64_t C = x.cols;
  const TokenScale<A> ctx(p.temperature, false, p.softcap);
  std::vector<std::uint64_t> mark(std::size_t((C + 63) / 64), 0);  // K of a row, for its exact tail
  for (std::int64_t i = row_begin; i < row_end; ++i) {
    TG* g = out.grad ? out.grad + i * out.grad_row_stride : nullptr;
    if (labels.ignored(i)) {
      if (out.row_loss) out.row_loss[i] = A(0);
      if (g)
        for (std::int64_t j = 0; j < C; ++j) g[j] = from_acc<TG>(A(0));
      continue;
    }
    const TS* s = x.student + i * x.student_row_stride;
    const A* lp = x.logprobs + i * x.logprobs_row_stride;
    const TI* idx = x.indices + i * x.indices_row_stride;
    A loss;
    if constexpr (W > 0) {
      using V = FloatLanes<W>;
      const auto lse_pass = [&]() FUSEDKD_LANES_INLINE_LAMBDA {
        using Lanes = TopKStudentLSE<V>;
        return lane_row_reduce<Lanes, TopKStudentLSE<float>, W>(C, [&](Lanes& lanes, std::int64_t j)
                                                                    FUSEDKD_LANES_INLINE_LAMBDA {
                 lanes.s.push(ctx.z(load_lanes<W>(s + j)));
               }).s;
      };
      const auto dense_grad = [&](const LogNormalizer<float>& n, float c) FUSEDKD_LANES_INLINE_LAMBDA {
        const V m(n.m), log_z(n.log_z), cv(c);
        for_lane_blocks<W>(C, [&](std::int64_t j, int first) FUSEDKD_LANES_INLINE_LAMBDA {
          V dz;
          const V z = ctx.z(load_lanes<W>(s + j), dz);
          store_lanes_from(g + j, cv * dz * exp_((z - m) - log_z), first);
        });
      };
      loss = topk_row(p, ctx, s, C, lp, idx, x.k, g, out.grad_scale, mark.data(), lse_pass, dense_grad);
    } else {
      const auto lse_pass = [&] {
        return reduce_columns<OnlineLSE<A>>(C, [&](OnlineLSE<A>& part, std::int64_t j) { part.push(ctx.z(A(to_acc(s[j])))); });
      };
      const auto dense_grad = [&](const LogNormalizer<A>& n, A c) {
        for (std::int64_t j = 0; j < C; ++j) {
          A dz;
          const A z = ctx.z(A(to_acc(s[j])), dz);
          g[j] = from_acc<TG>(c * dz * n.prob(z));
        }
      };
      loss = topk_row(p, ctx, s, C, lp, idx, x.k, g, out.grad_scale, mark.data(), lse_pass, dense_grad);
    }
    if (out.row_loss) out.row_loss[i] = loss;
  }
}

#if FUSEDKD_CPU_AVX2_DISPATCH
template <class... Args> __attribute__((target("avx2,fma"))) void topk_kd_rows_avx2(const Args&... args) {
  topk_kd_rows_impl<kAvx2Lanes>(args...);
}
#endif
template <class... Args> void topk_kd_rows_baseline(const Args&... args) { topk_kd_rows_impl<kBaselineLanes>(args...); }

}  // namespace detail

// Runs top-k KD on rows [row_begin, row_end): per-row losses and the gradient (already multiplied by
// out.grad_scale) where out asks for them. Indices must have been validated (validate_topk_indices)
// for the rows that count. fp32 accumulation takes the SIMD path where the row has at least a lane's
// width of columns, fp64 the scalar one.
template <class TS, class A, class TI, class TL, class TG>
void topk_kd_rows(const TopKKDParams& p, const TopKView<TS, A, TI>& x, const LabelsView<TL>& labels,
                  const RowOutputs<A, TG>& out, std::int64_t row_begin, std::int64_t row_end) {
  if constexpr (std::is_same_v<A, float> && is_lane_element<TS>) {
    if (x.cols >= kAvx2Lanes) {
#if FUSEDKD_CPU_AVX2_DISPATCH
      if (cpu_has_avx2()) return detail::topk_kd_rows_avx2(p, x, labels, out, row_begin, row_end);
#endif
      return detail::topk_kd_rows_baseline(p, x, labels, out, row_begin, row_end);
    }
  }
  detail::topk_kd_rows_impl<0>(p, x, labels, out, row_begin, row_end);
}

// The whole batch, single-threaded (the C++ API): validates, runs every row, returns the reduced loss.
template <class TS, class A, class TI, class TL, class TG>
A topk_kd(const TopKKDParams& p, const TopKView<TS, A, TI>& x, const LabelsView<TL>& labels, Reduction r,
          const RowOutputs<A, TG>& out) {
  validate_topk(p, std::is_same_v<A, double> ? Accumulation::Double : Accumulation::Float);
  require(x.rows >= 0 && x.cols >= 1, "student_logits: needs at least one class");
  validate_topk_sizes(x.k, x.cols);
  require(x.rows == 0 || (x.student && x.logprobs && x.indices), "topk_kd: null pointer");
  validate_topk_indices(x, labels);
  return run_batch<A>(r, x.rows, count_counted_rows(labels, x.rows), out,
                      [&](const RowOutputs<A, TG>& o) { topk_kd_rows(p, x, labels, o, 0, x.rows); });
}

}  // namespace cpu
}  // namespace fusedkd

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
