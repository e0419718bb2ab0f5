// KD from a sparse teacher: its top-k log-probabilities at k vocabulary indices per token, as an
// offline cache (Megatron-LM's cached-logits KD) or a served teacher (vLLM / SGLang logprobs) gives
// them (../shared/spec/llm_losses.md §3; docs/math_token.md, "Top-k teacher").
//
// Per token row: z_j = cap(s_j)/τ over the student's full vocabulary V, log q_j = z_j − lse(z); the
// teacher's log p_k (normalized over the teacher's full vocabulary, used as given: no τ on them) at the
// row's index set K. P_K = Σ_K p_k, Q_K = Σ_K q_k. With weights w_k on K (below),
//   ℓ = Σ_K w_k (log w_k − log q̃_k) [+ the ghost bucket]
// and ∂ℓ/∂z_j = q_j c_out for j ∉ K, q_j c_in − w_j for j ∈ K; ∂ℓ/∂s_j = (1/τ) cap'(s_j) ∂ℓ/∂z_j.
//
//   Ghost (Megatron-LM topk_kl_div(add_ghost_token=True)): w = p, plus the mass outside K as one more
//     bucket on both sides, G = max(1 − P_K, ε), R = max(1 − Q_K, ε), ε = 1e-8 (Megatron's clamps):
//       ℓ = Σ_K p_k (log p_k − log q_k) + G (log G − log R)
//       r = G / (1 − Q_K) (0 where the clamp of R is active: no gradient through it)
//       c_out = P_K − r Q_K,  c_in = c_out + r
//     1 − Q_K = −expm1(log Q_K), log Q_K = lse_K(z) − lse(z), not 1 − Σ_K q_k; below 1/16 the
//     executors sum the complement Σ_{j∉K} e^{z_j − m} exactly instead (the GPU for V ≤ 2^18).
//   Renormalize (the spec; no anchor does exactly this): the teacher renormalized over K,
//     w = p̂ = p / P_K, the student over its full vocabulary: ℓ = Σ_K p̂ (log p̂ − log q), c_out = c_in = 1.
//   RenormalizeBoth (Model-Optimizer TopKLogitsKLLoss on a given K; TRL server distillation with
//     loss_add_tail=False): both renormalized over K, q̂ = q / Q_K: ℓ = Σ_K p̂ (log p̂ − log q̂),
//     c_out = 0, c_in = 1 / Q_K.
//   None (Megatron-LM topk_kl_div(add_ghost_token=False)): w = p, nothing renormalized:
//     ℓ = Σ_K p_k (log p_k − log q_k) (can be negative), c_out = c_in = P_K.
// A teacher entry with log p = −inf (a missing entry) has weight 0 and adds nothing. No τ² factor
// (none of the anchors has one).
#pragma once

#include <cstdint>
#include <string>

#include "../config.hpp"
#include "../descriptor.hpp"
#include "../error.hpp"
#include "../online_softmax.hpp"
#include "token_scale.hpp"

namespace fusedkd {

// How the teacher's mass outside its top k is treated (the values of the op's `tail` argument).
enum class TopKTail : std::int64_t { Ghost = 0, Renormalize = 1, RenormalizeBoth = 2, None = 3 };

constexpr std::int64_t kTopKTailCount = 4;

// Megatron-LM's clamp of the two ghost buckets, 1 − P_K and 1 − Q_K.
constexpr double kTopKGhostFloor = 1e-8;

struct TopKKDParams {
  double temperature = 1.0;  // the student's; the teacher's log-probabilities are used as given
  std::int64_t tail = std::int64_t(TopKTail::Ghost);
  double softcap = 0.0;  // c > 0: s ← c·tanh(s/c) on the student's logits first; 0: none

  static constexpr auto fields() {
    return std::make_tuple(param("temperature", &TopKKDParams::temperature, ParamCheck::Temperature),
                           param("tail", &TopKKDParams::tail), param("softcap", &TopKKDParams::softcap, ParamCheck::Softcap));
  }
};

inline void validate_topk(const TopKKDParams& p, Accumulation acc) {
  validate(p, acc);
  require(p.tail >= 0 && p.tail < kTopKTailCount,
          "tail must be 'ghost', 'renormalize', 'renormalize_both' or 'none' (0-3), got " + std::to_string(p.tail));
}

// The statistics of a row over its index set K: lse_K(z) of the student, and the teacher's
// lse_K(log p) with the p-weighted sum Σ_K p_k v_k of v_k = log p_k − log q_k (a missing entry, log p =
// −inf, joins neither). Merges like the other streaming states (a block reduction on the GPU).
template <class A> struct TopKGather {
  OnlineLSE<A> student;     // over z_k
  OnlineLSEDot<A> teacher;  // over log p_k, v_k = log p_k − log q_k
  FUSEDKD_HD_FORCEINLINE void push(A z_k, A log_q_k, A log_p_k) {
    student.push(z_k);
    teacher.push(log_p_k, log_p_k - log_q_k);
  }
  FUSEDKD_HD void merge(const TopKGather& o) {
    student.merge(o.student);
    teacher.merge(o.teacher);
  }
};

// A finalized row: its loss and the gradient's coefficients (see the header comment).
template <class A> struct TopKRow {
  A loss;
  A c_out;         // ∂ℓ/∂z_j = q_j c_out off K
  A c_in;          // ∂ℓ/∂z_j = q_j c_in − w_j on K
  A log_w_offset;  // w_k = exp(log p_k − log_w_offset): 0, or log P_K when the teacher is renormalized
};

// log Q_K = lse_K(z) − lse(z), from the student's log-normalizer n (of z over V) and the gathers.
template <class A> FUSEDKD_HD_INLINE A topk_log_q_k(const LogNormalizer<A>& n, const TopKGather<A>& g) {
  return (g.student.m - n.m) + (log_(g.student.z) - n.log_z);
}

// Below this estimate of 1 − Q_K the executors sum the complement exactly (topk_rows.hpp,
// topk_kernels.cuh): the
// estimate −expm1(log Q_K) carries the rounding of the two accumulated sums, ≈ ε·Q_K/(1 − Q_K) relative.
constexpr double kTopKExactTailBelow = 1.0 / 16;

// The row from the student's log-normalizer n (of z over V; NaN already folded in for a non-finite row),
// the gathers over K, and the student's mass outside K, 1 − Q_K (the executor's estimate
// −expm1(log Q_K), or a sum over the complement).
template <class A>
FUSEDKD_HD TopKRow<A> topk_finalize(TopKTail tail, const LogNormalizer<A>& n, const TopKGather<A>& g, A one_minus_q) {
  TopKRow<A> r;
  const OnlineLSEDot<A>& t = g.teacher;
  const A log_p_k = t.lse();                 // log P_K
  const A log_q_k = topk_log_q_k(n, g);      // log Q_K
  const A q_k = exp_(log_q_k);
  // Σ_K p_k v_k = e^{m} d, Σ_K p̂_k v_k = d / z (v_k = log p_k − log q_k); 0 when no entry has mass.
  const A sum_pv = t.z == A(0) ? A(0) : exp_(t.m) * t.d;
  switch (tail) {
    case TopKTail::Ghost: {
      const A eps = A(kTopKGhostFloor);
      const A one_minus_p = -expm1_(log_p_k);
      const A G = one_minus_p > eps ? one_minus_p : eps;
      const A R = one_minus_q > eps ? one_minus_q : eps;
      const A rr = one_minus_q >= eps ? G / one_minus_q : A(0);
      r.loss = nonnegative(sum_pv + G * (log_(G) - log_(R)));
      r.c_out = exp_(log_p_k) - rr * q_k;
      r.c_in = r.c_out + rr;
      r.log_w_offset = A(0);
      break;
    }
    case TopKTail::Renormalize:
      r.loss = nonnegative(t.d / t.z - log_p_k);
      r.c_out = A(1);
      r.c_in = A(1);
      r.log_w_offset = log_p_k;
      break;
    case TopKTail::RenormalizeBoth:
      r.loss = nonnegative(t.d / t.z - log_p_k + log_q_k);
      r.c_out = A(0);
      r.c_in = exp_(-log_q_k);
      r.log_w_offset = log_p_k;
      break;
    default:  // None
      r.loss = sum_pv;
      r.c_out = exp_(log_p_k);
      r.c_in = r.c_out;
      r.log_w_offset = A(0);
      break;
  }
  return r;
}

// The teacher weight w_k of a row's entry.
template <class A> FUSEDKD_HD_FORCEINLINE A topk_weight(const TopKRow<A>& r, A log_p_k) {
  return exp_(log_p_k - r.log_w_offset);
}

// ∂ℓ/∂z_j for j ∈ K (q_j: the student's probability there, w: the teacher's weight).
template <class A> FUSEDKD_HD_FORCEINLINE A topk_grad_in(const TopKRow<A>& r, A q_j, A w) { return q_j * r.c_in - w; }

// A batch of token rows with a sparse teacher: student logits [rows, cols] (columns contiguous) and,
// per row, k teacher log-probabilities (in the accumulation type) at k vocabulary indices.
// TI: the index type (void in the type-erased CUDA API, which reads int64 or int32 by a flag).
template <class TS, class A, class TI> struct TopKView {
  const TS* student = nullptr;
  std::int64_t student_row_stride = 0;
  const A* logprobs = nullptr;
  std::int64_t logprobs_row_stride = 0;
  const TI* indices = nullptr;
  std::int64_t indices_row_stride = 0;
  std::int64_t rows = 0;
  std::int64_t cols = 0;  // V
  std::int64_t k = 0;
};

// Sizes of a row's index set: 1 ≤ k ≤ V.
inline void validate_topk_sizes(std::int64_t k, std::int64_t V) {
  require(k >= 1, "teacher_topk_logprobs: needs at least one entry per row (k ≥ 1), got k = " + std::to_string(k));
  require(k <= V, "teacher_topk_logprobs: k = " + std::to_string(k) + " entries per row but the student has only V = " +
                      std::to_string(V) + " classes");
}

}  // namespace fusedkd
