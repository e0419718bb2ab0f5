// Top-k teacher KD on the CPU executor (include/fusedkd/cpu/topk_rows.hpp): the float64 path against a
// dense naive evaluation of each tail mode's formula and its gradient against central differences; the
// float32 SIMD path against float64; the index checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <fusedkd/fusedkd.hpp>

using namespace fusedkd;
using std::int64_t;
using std::vector;

namespace {

struct Batch {
  int64_t N, V, k;
  vector<double> s, lp;
  vector<int64_t> idx;
};

// Student logits ~ 3·N(0, 1); the teacher's top-k log-probabilities of random logits, at distinct indices.
Batch make_batch(int64_t N, int64_t V, int64_t k, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, 3.0);
  Batch b{N, V, k, vector<double>(N * V), vector<double>(N * k), vector<int64_t>(N * k)};
  for (auto& x : b.s) x = nd(rng);
  for (int64_t i = 0; i < N; ++i) {
    vector<double> t(V);
    for (auto& x : t) x = nd(rng);
    double m = *std::max_element(t.begin(), t.end()), z = 0;
    for (double x : t) z += std::exp(x - m);
    vector<int64_t> order(V);
    for (int64_t j = 0; j < V; ++j) order[j] = j;
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t c) { return t[a] > t[c]; });
    for (int64_t e = 0; e < k; ++e) {
      b.idx[i * k + e] = order[e];
      b.lp[i * k + e] = t[order[e]] - m - std::log(z);
    }
  }
  return b;
}

// The row's loss from its definition, densely in long double: log q over V, then each mode.
double naive_row(const TopKKDParams& p, const double* s, const double* lp, const int64_t* idx, int64_t V, int64_t k) {
  using L = long double;
  vector<L> z(V);
  L m = -INFINITY;
  for (int64_t j = 0; j < V; ++j) {
    L x = s[j];
    if (p.softcap > 0) x = L(p.softcap) * std::tanh(x / L(p.softcap));
    z[j] = x / L(p.temperature);
    m = std::max(m, z[j]);
  }
  L sum = 0;
  for (L x : z) sum += std::exp(x - m);
  const L lse = m + std::log(sum);
  L P = 0, Q = 0;
  for (int64_t e = 0; e < k; ++e) {
    P += std::exp(L(lp[e]));
    Q += std::exp(z[idx[e]] - lse);
  }
  L loss = 0;
  for (int64_t e = 0; e < k; ++e) {
    const L lq = z[idx[e]] - lse;
    L lw = lp[e];
    if (p.tail == int64_t(TopKTail::Renormalize) || p.tail == int64_t(TopKTail::RenormalizeBoth)) lw -= std::log(P);
    const L lqq = p.tail == int64_t(TopKTail::RenormalizeBoth) ? lq - std::log(Q) : lq;
    loss += std::exp(lw) * (lw - lqq);
  }
  if (p.tail == int64_t(TopKTail::Ghost)) {
    const L G = std::max<L>(1 - P, 1e-8), R = std::max<L>(1 - Q, 1e-8);
    loss += G * (std::log(G) - std::log(R));
  }
  return double(loss);
}

template <class TS, class A>
A run_cpu(const TopKKDParams& p, const Batch& b, const vector<TS>& s, vector<A>* grad, vector<A>* rows,
          const int64_t* labels = nullptr, Reduction r = Reduction::BatchMean) {
  vector<A> lp(b.lp.begin(), b.lp.end());
  const TopKView<TS, A, int64_t> x{s.data(), b.V, lp.data(), b.k, b.idx.data(), b.k, b.N, b.V, b.k};
  RowOutputs<A, A> out{rows ? rows->data() : nullptr, grad ? grad->data() : nullptr, b.V, A(1)};
  return cpu::topk_kd(p, x, LabelsView<int64_t>{labels, -100}, r, out);
}

const char* tail_name(int64_t t) {
  static const char* names[] = {"ghost", "renormalize", "renormalize_both", "none"};
  return names[t];
}

class TopKTails : public ::testing::TestWithParam<int64_t> {};

TEST_P(TopKTails, Float64MatchesTheDefinitionAndItsDerivative) {
  for (double tau : {0.5, 1.0, 2.0}) {
    for (double cap : {0.0, 4.0}) {
      TopKKDParams p;
      p.tail = GetParam();
      p.temperature = tau;
      p.softcap = cap;
      const Batch b = make_batch(3, 37, 6, 11);
      vector<double> g(b.N * b.V), rows(b.N);
      const double loss = run_cpu(p, b, b.s, &g, &rows);
      double expected = 0;
      for (int64_t i = 0; i < b.N; ++i) {
        const double want = naive_row(p, &b.s[i * b.V], &b.lp[i * b.k], &b.idx[i * b.k], b.V, b.k);
        EXPECT_NEAR(rows[i], want, 1e-12 * std::max(1.0, std::abs(want))) << "row " << i;
        expected += want / double(b.N);
      }
      EXPECT_NEAR(loss, expected, 1e-12 * std::max(1.0, std::abs(expected)));
      for (int64_t j = 0; j < b.N * b.V; ++j) {  // ∂(batchmean)/∂s_j by central differences
        vector<double> sp = b.s, sm = b.s;
        const double h = 1e-5;
        sp[j] += h;
        sm[j] -= h;
        const double fd = (run_cpu<double, double>(p, b, sp, nullptr, nullptr) - run_cpu<double, double>(p, b, sm, nullptr, nullptr)) / (2 * h);
        ASSERT_NEAR(g[j], fd, 1e-7) << tail_name(p.tail) << " tau " << tau << " cap " << cap << " element " << j;
      }
    }
  }
}

TEST_P(TopKTails, Float32LanesMatchFloat64) {
  TopKKDParams p;
  p.tail = GetParam();
  for (int64_t V : {5, 8, 33, 1000, 4099}) {  // below, at and above the lane widths, remainders
    const int64_t k = std::min<int64_t>(V, 16);
    const Batch b = make_batch(4, V, k, unsigned(V));
    const vector<float> s32(b.s.begin(), b.s.end());
    const vector<double> s64(s32.begin(), s32.end());  // the same rounded inputs
    vector<float> g32(b.N * V), r32(b.N);
    vector<double> g64(b.N * V), r64(b.N);
    run_cpu(p, b, s32, &g32, &r32);
    run_cpu(p, b, s64, &g64, &r64);
    double gmax = 0;
    for (double x : g64) gmax = std::max(gmax, std::abs(x));
    for (int64_t i = 0; i < b.N; ++i) EXPECT_NEAR(r32[i], r64[i], 2e-5 * std::max(1.0, std::abs(r64[i]))) << "V " << V;
    for (int64_t j = 0; j < b.N * V; ++j) ASSERT_NEAR(g32[j], g64[j], 2e-5 * gmax + 1e-9) << "V " << V << " element " << j;
  }
}

INSTANTIATE_TEST_SUITE_P(Tails, TopKTails, ::testing::Values(0, 1, 2, 3),
                         [](const auto& info) { return std::string(tail_name(info.param)); });

TEST(TopKKD, IgnoredRowsCountForNothingAndAreNotValidated) {
  const Batch b0 = make_batch(3, 20, 4, 5);
  Batch b = b0;
  b.idx[1 * b.k + 2] = 99;  // garbage in an ignored row
  const int64_t labels[] = {0, -100, 3};
  vector<double> g(b.N * b.V), rows(b.N);
  TopKKDParams p;
  const double loss = run_cpu(p, b, b.s, &g, &rows, labels);
  EXPECT_EQ(rows[1], 0.0);
  for (int64_t j = 0; j < b.V; ++j) EXPECT_EQ(g[1 * b.V + j], 0.0);
  EXPECT_NEAR(loss, (rows[0] + rows[2]) / 2, 1e-15);
}

TEST(TopKKD, BadIndicesThrowNamingTheRow) {
  Batch b = make_batch(2, 10, 3, 6);
  TopKKDParams p;
  b.idx[1 * 3 + 1] = -1;
  std::string message;
  try {
    run_cpu<double, double>(p, b, b.s, nullptr, nullptr);
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("index -1 at row 1, entry 1 is out of range [0, 10)"), std::string::npos) << message;
  b.idx[1 * 3 + 1] = b.idx[1 * 3 + 0];
  EXPECT_THROW((run_cpu<double, double>(p, b, b.s, nullptr, nullptr)), Error);
  b = make_batch(2, 10, 3, 6);
  p.tail = 7;
  EXPECT_THROW((run_cpu<double, double>(p, b, b.s, nullptr, nullptr)), Error);
}

TEST(TopKKD, GhostTailKeepsItsAccuracyAsQKTendsToOne) {
  // One row: the student's mass outside K is about 1e-6; float32 must get the ghost term's gradient
  // q_j (1 − G/(1 − Q_K)) off K to its own relative accuracy (1 − Σ_K q in float32 would not).
  const int64_t V = 3000, k = 8;
  Batch b{1, V, k, vector<double>(V, 0.0), vector<double>(k), vector<int64_t>(k)};
  for (int64_t j = 0; j < V; ++j) b.s[j] = j < k ? 20.0 + 0.1 * double(j) : std::sin(double(j));
  for (int64_t e = 0; e < k; ++e) {
    b.idx[e] = e;
    b.lp[e] = std::log((1 - 1e-3) / double(k));
  }
  const vector<float> s32(b.s.begin(), b.s.end());
  const vector<double> s64(s32.begin(), s32.end());
  vector<float> g32(V), r32(1);
  vector<double> g64(V), r64(1);
  TopKKDParams p;
  run_cpu(p, b, s32, &g32, &r32);
  run_cpu(p, b, s64, &g64, &r64);
  EXPECT_NEAR(r32[0], r64[0], 2e-6);  // float32 rounding of the K terms (logits near 20)
  for (int64_t j = k; j < V; ++j) ASSERT_NEAR(g32[j], g64[j], 1e-3 * std::abs(g64[j])) << j;
}

}  // namespace
