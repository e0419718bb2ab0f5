// The row program's contract for what comes next (issue #14, docs/architecture.md), on every
// row-local loss of the registry with its default parameters, so a new loss is covered without an edit:
//   (a) a row's statistics, reduced over column shards separately and merged from outside before
//       finalize (the vocab-parallel exchange), and for a loss with a cross pass (JSD, TVD) its cross
//       sums likewise before finish, give the same loss and gradient as the whole row;
//   (b) the executor runs on a range of rows with caller-provided outputs, and the gradient may be
//       written in place over the student logits (the fused linear head's chunk buffers).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <fusedkd/fusedkd.hpp>

using namespace fusedkd;
using std::int64_t;
using std::vector;

namespace {

struct Batch {
  int64_t N, C;
  vector<double> s, t;
  vector<int64_t> y;
};

Batch make_batch(int64_t N, int64_t C, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 3.0);
  Batch b{N, C, vector<double>(size_t(N * C)), vector<double>(size_t(N * C)), vector<int64_t>(size_t(N))};
  for (auto& v : b.s) v = normal(rng);
  for (auto& v : b.t) v = normal(rng);
  for (int64_t i = 0; i < N; ++i) b.y[size_t(i)] = int64_t(rng() % uint64_t(C));
  b.y[1] = -100;  // one ignored row
  return b;
}

// (a): Stats over shards [0, c) and [c, C) pushed separately, merged in shard order, then
// finalize and grad per column, against the executor's own whole-row result.
template <template <class> class Loss> void shard_merge_matches_whole_row(const char* name) {
  using L = Loss<double>;
  const typename L::Params params{};
  const Batch b = make_batch(6, 37, 11);
  vector<double> row_loss(size_t(b.N)), grad(size_t(b.N * b.C));
  const LogitsView<double> x{b.s.data(), b.C, b.t.data(), b.C, b.N, b.C};
  const LabelsView<int64_t> labels{b.y.data(), -100};
  cpu::run_rows<Loss>(params, x, labels, RowOutputs<double, double>{row_loss.data(), grad.data(), b.C, 1.0}, 0, b.N);
  for (int64_t i = 0; i < b.N; ++i) {
    if (labels.ignored(i)) continue;
    const double* s = b.s.data() + i * b.C;
    const double* t = b.t.data() + i * b.C;
    const typename L::Context ctx(params, gather_row_input<double>(s, t, L::uses_label ? labels.label(i) : -1));
    for (int64_t cut : {int64_t(1), int64_t(16), b.C - 1}) {
      typename L::Stats left, right;
      for (int64_t j = 0; j < cut; ++j) left.push(ctx, j, s[j], t[j]);
      for (int64_t j = cut; j < b.C; ++j) right.push(ctx, j, s[j], t[j]);
      left.merge(right);  // the exchange: shard 1's state merged into shard 0's
      typename L::Row r = L::finalize(ctx, left);
      if constexpr (has_cross_pass<L>::value) {  // JSD, TVD: the cross sums over the same shards, merged
        typename L::Cross cl, cr;
        for (int64_t j = 0; j < cut; ++j) cl.push(ctx, r, j, s[j], t[j]);
        for (int64_t j = cut; j < b.C; ++j) cr.push(ctx, r, j, s[j], t[j]);
        cl.merge(cr);
        L::finish(ctx, r, cl);
      }
      EXPECT_NEAR(r.loss, row_loss[size_t(i)], 1e-12 * std::max(1.0, std::fabs(row_loss[size_t(i)])))
          << name << " row " << i << " cut " << cut;
      for (int64_t j = 0; j < b.C; ++j)
        EXPECT_NEAR(L::grad(ctx, r, j, s[j], t[j]), grad[size_t(i * b.C + j)], 1e-12)
            << name << " row " << i << " col " << j << " cut " << cut;
    }
  }
}

// (b): rows [2, 5) run into caller buffers, then the same rows with the gradient written over a
// copy of the student logits: identical to the out-of-place gradient, and rows outside untouched.
template <template <class> class Loss> void gradient_in_place_over_the_logits(const char* name) {
  using Params = typename Loss<float>::Params;
  for (int64_t C : {int64_t(5), int64_t(300)}) {  // the scalar rows and the SIMD lanes
    const Batch b = make_batch(7, C, unsigned(C));
    vector<float> s(b.s.begin(), b.s.end()), t(b.t.begin(), b.t.end());
    const LabelsView<int64_t> labels{b.y.data(), -100};
    vector<float> loss_a(size_t(b.N), -1.f), grad_a(size_t(b.N * C), -7.f);
    const LogitsView<float> x{s.data(), C, t.data(), C, b.N, C};
    cpu::loss_rows<Loss>(Params{}, x, labels, RowOutputs<float, float>{loss_a.data(), grad_a.data(), C, 0.25f}, 2, 5);
    vector<float> inplace = s, loss_b(size_t(b.N), -1.f);
    const LogitsView<float> xb{inplace.data(), C, t.data(), C, b.N, C};
    cpu::loss_rows<Loss>(Params{}, xb, labels, RowOutputs<float, float>{loss_b.data(), inplace.data(), C, 0.25f}, 2, 5);
    for (int64_t i = 0; i < b.N; ++i)
      for (int64_t j = 0; j < C; ++j) {
        const size_t k = size_t(i * C + j);
        if (i >= 2 && i < 5)
          EXPECT_EQ(inplace[k], grad_a[k]) << name << " C " << C << " row " << i << " col " << j;
        else
          EXPECT_EQ(inplace[k], s[k]) << name << " row " << i << " outside the range was written";
      }
    for (int64_t i = 0; i < b.N; ++i) EXPECT_EQ(loss_a[size_t(i)], loss_b[size_t(i)]) << name;
  }
}

}  // namespace

#define FUSEDKD_ROW_PROGRAM_TESTS(L)                                                    \
  TEST(RowProgram, L##ShardsMergedFromOutsideMatchTheWholeRow) {                        \
    shard_merge_matches_whole_row<L>(#L);                                               \
  }                                                                                     \
  TEST(RowProgram, L##GradientInPlaceOverTheLogits) { gradient_in_place_over_the_logits<L>(#L); }
FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_ROW_PROGRAM_TESTS)
#undef FUSEDKD_ROW_PROGRAM_TESTS
