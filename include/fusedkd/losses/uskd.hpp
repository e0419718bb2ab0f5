// Universal self-KD (USKD, Yang et al., ICCV 2023), teacher-free, as cls_KD's
// dis_losses/uskd.py computes it (hard labels). Inputs per row: student logits s, the weak
// logits w = fc(feature) of the loss module's extra linear layer, and the label y.
//
// p = softmax at temperature 1, q_j = exp(s_j) / Σ_{k≠y} exp(s_k) (j ≠ y), C classes:
//   (1) u_i = p_s,y²;  soft_i = u_i + 1 − mean_i u_i  (batch mean over counted rows; constant)
//       target term  T = −soft · log p_s,y
//   (2) smooth = 0.9·onehot(y) + 0.1/C;  weak term  W = −μ Σ_j smooth_j log p_w,j
//         = −μ [ 0.9 (w_y − lse(w)) + 0.1 (mean_j w_j − lse(w)) ]
//   (3) score r_j = p_w,j / (1 − p_w,y + 1e-6) + log p_s,j / (1 − log p_s,y + 1e-6)
//       (the student part uses log-probabilities: a quirk of the reference, kept);
//       rank_j = position of j in the descending sort of r (ties: lower class index first);
//       z_j = (1/(rank_j+1)) / Z for j ≠ y,  Z = Σ_{j≠y} 1/(rank_j+1) = H_C − 1/(rank_y+1)
//       non-target term  NT = −Σ_{j≠y} z_j log q_s,j = Σ_{j≠y} z_j (lse_nt(s) − s_j)
//   ℓ = α·T + β·NT + W
// Gradients (soft and z are constants):
//   ∂ℓ/∂s_j = α soft (p_s,j − δ_jy) + β (1 − δ_jy)(q_s,j − z_j)
//   ∂ℓ/∂w_j = μ (p_w,j − smooth_j)
//
// The loss is not row-local: u needs a batch mean (between a first and a second pass) and z
// needs a per-row ranking. This header holds the per-row math as host/device functions:
//   pass 1: USKDStats (mergeable) → uskd_row_stats() → USKDRowStats (u, lse's, score denominators)
//   batch:  mean_u over counted rows
//   pass 2: ranks of uskd_score() under uskd_rank_before(); uskd_row() → USKDRow;
//           NT = Σ_{j≠y} uskd_nt_term(); gradients uskd_grad_student() / uskd_grad_weak().
#pragma once

#include "../online_softmax.hpp"
#include "../descriptor.hpp"

namespace fusedkd {

struct USKDParams {
  double alpha = 1.0;
  double beta = 0.1;
  double mu = 0.005;

  static constexpr auto fields() {
    return std::make_tuple(param("alpha", &USKDParams::alpha, ParamCheck::Finite),
                           param("beta", &USKDParams::beta, ParamCheck::Finite),
                           param("mu", &USKDParams::mu, ParamCheck::Finite));
  }
};

// USKD's descriptor (its row math is the functions below, run by its own two-pass executors:
// cpu/uskd.hpp, cuda/uskd_kernels.cuh): student and weak logits w = fc(feature), both receiving
// a gradient; labels read by every row.
template <class A> struct USKD {
  using Params = USKDParams;
  static constexpr const char* name = "uskd";
  static constexpr bool uses_teacher = false;
  static constexpr bool weak_logits = true;  // the second logits are the weak head's, differentiable
  static constexpr bool uses_label = true;
  static constexpr long long min_classes = 2;
};

// Pass 1 statistics of a row (label y); merge is associative.
template <class A> struct USKDStats {
  OnlineLSE<A> s_nt;  // lse_{j≠y}(s)
  OnlineLSE<A> w_nt;  // lse_{j≠y}(w): 1 − p_w,y = exp(lse_nt(w) − lse(w)) keeps its precision as p_w,y → 1
  A sum_w = A(0);     // Σ_j w_j
  FUSEDKD_HD void push(long long y, long long j, A sj, A wj) {
    if (j != y) {
      s_nt.push(sj);
      w_nt.push(wj);
    }
    sum_w += wj;
  }
  FUSEDKD_HD void merge(const USKDStats& o) {
    s_nt.merge(o.s_nt);
    w_nt.merge(o.w_nt);
    sum_w += o.sum_w;
  }
};

// What a row keeps between pass 1 and pass 2.
template <class A> struct USKDRowStats {
  A s_y;        // gathered student target logit
  A lse_s;      // lse(s) = logaddexp(lse_nt(s), s_y)
  A lse_nt_s;   // lse_{j≠y}(s)
  A log_ps_y;   // log p_s,y
  A u;          // p_s,y²
  A lse_w;      // lse(w) = logaddexp(lse_nt(w), w_y)
  A den_w;      // 1 − p_w,y + 1e-6, 1 − p_w,y = exp(lse_nt(w) − lse(w))
  A den_s;      // 1 − log p_s,y + 1e-6
  A weak_loss;  // W (already times μ)
  // For the gradients, the normalizers with their max and log z kept apart (LogNormalizer):
  // p_s,j = exp((s_j − m_s) − log_z_s), q_s,j = exp((s_j − m_s) − log_z_nt_s), p_w,j likewise.
  A m_s, log_z_s, log_z_nt_s, m_w, log_z_w;
};

template <class A>
FUSEDKD_HD_INLINE USKDRowStats<A> uskd_row_stats(const USKDParams& p, const USKDStats<A>& st, A s_y, A w_y,
                                                 long long C) {
  USKDRowStats<A> r;
  r.s_y = s_y;
  r.lse_nt_s = st.s_nt.lse();
  r.m_s = st.s_nt.m;
  r.log_z_nt_s = log_(st.s_nt.z);
  r.log_z_s = log_add_exp(r.log_z_nt_s, s_y - r.m_s);      // lse(s) − m_s
  r.m_w = st.w_nt.m;
  r.log_z_w = log_add_exp(log_(st.w_nt.z), w_y - r.m_w);    // lse(w) − m_w
  r.lse_s = log_add_exp(r.lse_nt_s, s_y);                  // lse(s)
  r.log_ps_y = s_y - r.lse_s;                               // log p_s,y
  const A ps_y = exp_(r.log_ps_y);
  r.u = ps_y * ps_y;                                        // u = p_s,y²
  const A lse_nt_w = st.w_nt.lse();
  r.lse_w = log_add_exp(lse_nt_w, w_y);                     // lse(w)
  const A log_pw_y = w_y - r.lse_w;
  r.den_w = exp_(lse_nt_w - r.lse_w) + A(1e-6);             // 1 − p_w,y + 1e-6, without cancellation
  r.den_s = (A(1) - r.log_ps_y) + A(1e-6);                  // 1 − log p_s,y + 1e-6
  const A mean_log_pw = st.sum_w / A(C) - r.lse_w;          // (1/C) Σ_j log p_w,j
  // −μ Σ_j smooth_j log p_w,j (the cross-entropy is never negative)
  r.weak_loss = A(p.mu) * nonnegative(-(A(0.9) * log_pw_y + A(0.1) * mean_log_pw));
  return r;
}

// The per-column formulas below are written once for every executor: V is a scalar (the CPU scalar
// rows, the CUDA kernels) or SIMD lanes (cpu/uskd.hpp), M a bool or a lane mask (is_y: j == y), and
// a class's rank enters as rank1 = rank + 1, a value of V. Always inlined: on the CPU they run
// inside instruction-set-specific lane code (a call would pass 32-byte vectors across ISAs).

// Ranking score r_j (only its order matters).
template <class A, class V> FUSEDKD_HD_FORCEINLINE V uskd_score(const USKDRowStats<A>& r, V sj, V wj) {
  return exp_(wj - r.lse_w) / r.den_w + (sj - r.lse_s) / r.den_s;
}

// Whether class k sorts before class j in the descending order of scores (ties: lower index
// first). rank_j = #{k : uskd_rank_before(r_k, k, r_j, j)} — a counting rank a GPU can compute
// without a sort, and the position a stable descending sort gives.
template <class A> FUSEDKD_HD_INLINE bool uskd_rank_before(A r_k, long long k, A r_j, long long j) {
  return r_k > r_j || (r_k == r_j && k < j);
}

// H_n = Σ_{k=1}^{n} 1/k in double (summed from the small terms up).
FUSEDKD_HD_INLINE double harmonic_number(long long n) {
  double h = 0.0;
  for (long long k = n; k >= 1; --k) h += 1.0 / double(k);
  return h;
}

// Pass 2 row constants.
template <class A> struct USKDRow {
  long long y;
  A soft;    // u + 1 − mean_u
  A inv_z;   // 1 / Z,  Z = Σ_{j≠y} 1/(rank_j+1)
  A lse_s, lse_nt_s, lse_w;
  A m_s, log_z_s, log_z_nt_s, m_w, log_z_w;  // as USKDRowStats (the gradients' probabilities)
  A grad_s_y;  // ∂ℓ/∂s_y = −α soft (1 − p_s,y)
  A alpha, beta, mu, smooth_other, smooth_y;  // weights; smooth_j = 0.1/C (+0.9 at y)
};

// harmonic_C = harmonic_number(C) (computed once per batch); rank_y = the label's rank.
template <class A>
FUSEDKD_HD_INLINE USKDRow<A> uskd_row(const USKDParams& p, const USKDRowStats<A>& st, long long y, A mean_u,
                                      long long C, double harmonic_C, long long rank_y) {
  USKDRow<A> r;
  r.y = y;
  // A row with a NaN or +inf logit, or a student target of −inf (its rank score is −inf/inf), is
  // NaN: loss and both gradient rows (docs/math.md, "Non-finite inputs").
  const A bad = nan_unless_finite(st.lse_s) + nan_unless_finite(st.lse_nt_s) + nan_unless_finite(st.lse_w) +
                nan_unless_finite(st.den_s) + nan_unless_finite(st.den_w);
  r.soft = st.u + A(1) - mean_u + bad;                                  // soft = u + 1 − mean u
  r.inv_z = A(1.0 / (harmonic_C - 1.0 / double(rank_y + 1)));         // Z = H_C − 1/(rank_y+1)
  r.lse_s = st.lse_s;
  r.lse_nt_s = st.lse_nt_s;
  r.lse_w = st.lse_w + bad;
  r.m_s = st.m_s;
  r.log_z_s = st.log_z_s + bad;
  r.log_z_nt_s = st.log_z_nt_s + bad;
  r.m_w = st.m_w;
  r.log_z_w = st.log_z_w + bad;
  r.alpha = A(p.alpha);
  r.beta = A(p.beta);
  r.mu = A(p.mu);
  r.grad_s_y = -r.alpha * r.soft * exp_(st.log_z_nt_s - st.log_z_s);  // α soft (p_s,y − 1)
  r.smooth_other = A(0.1) / A(C);
  r.smooth_y = A(0.9) + r.smooth_other;
  return r;
}

// z_j for j ≠ y: (1/Z) / (rank_j + 1).
template <class A, class V> FUSEDKD_HD_FORCEINLINE V uskd_zipf(const USKDRow<A>& r, V rank1) { return r.inv_z / rank1; }

// The j-th summand of NT for j ≠ y: z_j (lse_nt(s) − s_j) = −z_j log q_s,j.
template <class A, class V> FUSEDKD_HD_FORCEINLINE V uskd_nt_term(const USKDRow<A>& r, V sj, V rank1) {
  return uskd_zipf(r, rank1) * (r.lse_nt_s - sj);
}

// ℓ = α T + β NT + W, given NT = Σ_{j≠y} uskd_nt_term(...).
template <class A> FUSEDKD_HD_INLINE A uskd_row_loss(const USKDRow<A>& r, const USKDRowStats<A>& st, A nt) {
  return r.alpha * r.soft * (-st.log_ps_y) + r.beta * nonnegative(nt) + st.weak_loss;
}

// ∂ℓ/∂s_j = α soft p_s,j + β (q_s,j − z_j) for j ≠ y; grad_s_y at y (rank1 unused there).
// p and q from m and log z kept apart.
template <class A, class V, class M>
FUSEDKD_HD_FORCEINLINE V uskd_grad_student(const USKDRow<A>& r, M is_y, V sj, V rank1) {
  const V ds = sj - r.m_s;
  const V ps = exp_(ds - r.log_z_s);     // p_s,j
  const V q = exp_(ds - r.log_z_nt_s);   // q_s,j
  return select(is_y, r.grad_s_y, r.alpha * r.soft * ps + r.beta * (q - uskd_zipf(r, rank1)));
}

// ∂ℓ/∂w_j = μ (p_w,j − smooth_j).
template <class A, class V, class M> FUSEDKD_HD_FORCEINLINE V uskd_grad_weak(const USKDRow<A>& r, M is_y, V wj) {
  return r.mu * (exp_((wj - r.m_w) - r.log_z_w) - select(is_y, V(r.smooth_y), V(r.smooth_other)));
}

}  // namespace fusedkd
