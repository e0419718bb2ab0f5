// USKD's SIMD path (cpu/uskd.hpp: uskd_stats_rows_lanes, uskd_rows_lanes) on the 128-bit and
// (where the CPU has it) AVX2 lanes against the fp64 scalar path on the same inputs: row losses
// and both gradients, for C from 2 to 2100 — every remainder modulo the lane width, rows ranked by
// counting and by the radix sort, more than one column block — fp32/fp16/bf16 inputs, ignored
// rows and labels at 0, C − 1 and in the remainder. Also: the counting ranks against the
// comparator, exact ties, and results that do not depend on how the rows are split.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

#include <fusedkd/fusedkd.hpp>

#include "test_support.hpp"

using namespace fusedkd;
using std::int64_t;
using std::vector;

namespace {

enum class Lane { Baseline, Avx2 };

constexpr int64_t kIgnore = -100;
constexpr float kGradScale = 0.5f;

struct Data {
  int64_t N, C;
  vector<double> s, w;  // student and weak logits
  vector<int64_t> y;
};

// Normal(0, 3) logits. Labels cycle through 0, C − 1, a column in the remainder of C mod 8 and
// random columns; row 3 is ignored.
Data make_data(int64_t N, int64_t C, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 3.0);
  Data d{N, C, vector<double>(size_t(N * C)), vector<double>(size_t(N * C)), {}};
  for (auto& v : d.s) v = normal(rng);
  for (auto& v : d.w) v = normal(rng);
  d.y = test_support::cycling_labels(N, C, rng);
  if (N > 3) d.y[3] = kIgnore;
  return d;
}

using test_support::back;
using test_support::cast;
using test_support::expect_close;

struct Result {
  vector<double> loss, grad_s, grad_w;
};

// The fp64 scalar path (cpu::uskd with double logits), per-row losses and gradients times kGradScale.
Result reference(const Data& d, const vector<double>& s, const vector<double>& w) {
  cpu::StudentWeakView<double, double> x{s.data(), d.C, w.data(), d.C, d.N, d.C};
  LabelsView<int64_t> labels{d.y.data(), kIgnore};
  Result r{vector<double>(size_t(d.N)), vector<double>(size_t(d.N * d.C)), vector<double>(size_t(d.N * d.C))};
  cpu::USKDOutputs<double, double> out{r.loss.data(), r.grad_s.data(), d.C, r.grad_w.data(), d.C, kGradScale};
  cpu::uskd(USKDParams{}, x, labels, Reduction::None, out);
  return r;
}

// Both passes on the given lanes over rows [0, N), the rows pass split at split_row.
template <class T>
Result run_lanes(Lane lane, const Data& d, const vector<T>& s, const vector<T>& w, int64_t split_row = 0) {
  cpu::StudentWeakView<T, T> x{s.data(), d.C, w.data(), d.C, d.N, d.C};
  LabelsView<int64_t> labels{d.y.data(), kIgnore};
  vector<USKDRowStats<float>> stats(size_t(d.N));
  vector<float> loss(size_t(d.N), -1.0f);
  vector<T> gs(size_t(d.N * d.C)), gw(size_t(d.N * d.C));
  cpu::USKDOutputs<float, T> out{loss.data(), gs.data(), d.C, gw.data(), d.C, kGradScale};
  const USKDParams p;
  USKDRowStats<float>* st = stats.data();
  if (lane == Lane::Baseline) {
    cpu::detail::uskd_stats_rows_baseline(p, x, labels, st, int64_t(0), d.N);
  } else {
#if FUSEDKD_CPU_AVX2_DISPATCH
    cpu::detail::uskd_stats_rows_avx2(p, x, labels, st, int64_t(0), d.N);
#endif
  }
  const float mean_u = cpu::uskd_mean_u(stats.data(), labels, d.N);
  const USKDRowStats<float>* cst = stats.data();
  for (auto [b, e] : {std::pair<int64_t, int64_t>{0, split_row}, std::pair<int64_t, int64_t>{split_row, d.N}}) {
    if (lane == Lane::Baseline) {
      cpu::detail::uskd_rows_baseline(p, x, labels, cst, mean_u, out, b, e);
    } else {
#if FUSEDKD_CPU_AVX2_DISPATCH
      cpu::detail::uskd_rows_avx2(p, x, labels, cst, mean_u, out, b, e);
#endif
    }
  }
  return Result{vector<double>(loss.begin(), loss.end()), back(gs), back(gw)};
}


// Tolerances against fp64, as test_seed_losses' USKD.FloatMatchesNaive (logits of magnitude ~20:
// a float rounding inside every exp and lse costs ~1e-5 absolute; near-tied scores may swap ranks,
// which moves z by ~1/(k² Z)); the gradients also within one rounding of the output type.
constexpr double kLossAtol = 4e-5, kLossRtol = 1e-5;
constexpr double kGradStudentAtol = 3e-6, kGradWeakAtol = 5e-8;
template <class T> double grad_rtol() {
  if (std::is_same_v<T, half_t>) return 1e-3;      // 2^-11 relative rounding, and the fp32 error
  if (std::is_same_v<T, bfloat16_t>) return 8e-3;  // 2^-8
  return 1e-4;
}

template <class T> void expect_lanes_match_fp64(Lane lane, int64_t N, int64_t C) {
  SCOPED_TRACE(testing::Message() << "C " << C << " lanes " << (lane == Lane::Avx2 ? "avx2" : "baseline"));
  const Data d = make_data(N, C, unsigned(C * 13 + N));
  const vector<T> s = cast<T>(d.s), w = cast<T>(d.w);
  const Result want = reference(d, back(s), back(w));
  const Result got = run_lanes(lane, d, s, w);
  expect_close(got.loss, want.loss, kLossAtol, kLossRtol, "row_loss");
  expect_close(got.grad_s, want.grad_s, kGradStudentAtol, grad_rtol<T>(), "grad_student");
  expect_close(got.grad_w, want.grad_w, kGradWeakAtol, grad_rtol<T>(), "grad_weak");
  for (int64_t i = 0; i < N; ++i) {
    if (d.y[size_t(i)] != kIgnore) continue;  // ignored rows: exact zeros
    EXPECT_EQ(got.loss[size_t(i)], 0.0);
    for (int64_t j = 0; j < C; ++j) {
      EXPECT_EQ(got.grad_s[size_t(i * C + j)], 0.0);
      EXPECT_EQ(got.grad_w[size_t(i * C + j)], 0.0);
    }
  }
}

class USKDLanes : public ::testing::TestWithParam<Lane> {
 protected:
  void SetUp() override {
#if FUSEDKD_CPU_AVX2_DISPATCH
    if (GetParam() == Lane::Avx2 && !cpu::cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2/FMA";
#else
    if (GetParam() == Lane::Avx2) GTEST_SKIP() << "no AVX2 dispatch on this architecture";
#endif
  }
  int width() const { return GetParam() == Lane::Avx2 ? cpu::kAvx2Lanes : cpu::kBaselineLanes; }
};

// Every C in [2, 40] (below, at and above both widths, every remainder), both sides of the
// counting-rank limit (64 and 128 columns), every remainder mod 8 above it, and rows of more than
// one column block (1024) up to 2100.
vector<int64_t> column_counts() {
  vector<int64_t> cols;
  for (int64_t C = 2; C <= 40; ++C) cols.push_back(C);
  for (int64_t C : {63L, 64L, 65L, 100L, 127L, 128L, 129L}) cols.push_back(C);
  for (int64_t C = 130; C <= 137; ++C) cols.push_back(C);
  for (int64_t C : {255L, 257L, 1000L}) cols.push_back(C);
  for (int64_t C = 1023; C <= 1031; ++C) cols.push_back(C);
  for (int64_t C : {2048L, 2051L, 2100L}) cols.push_back(C);
  return cols;
}

TEST_P(USKDLanes, Float32MatchesFp64) {
  for (int64_t C : column_counts()) expect_lanes_match_fp64<float>(GetParam(), 6, C);
}

TEST_P(USKDLanes, HalfAndBfloat16MatchFp64) {
  for (int64_t C : {2L, 5L, 8L, 13L, 100L, 129L, 1000L, 2051L}) {
    expect_lanes_match_fp64<half_t>(GetParam(), 6, C);
    expect_lanes_match_fp64<bfloat16_t>(GetParam(), 6, C);
  }
}

// Constant weak logits and equal non-target student logits: all non-target scores tie exactly,
// in fp32 as in fp64, so the Zipf weights follow the class index on both ranking paths.
TEST_P(USKDLanes, ExactTiesGoToTheLowerIndex) {
  for (int64_t C : {7L, 37L, 128L, 129L, 1000L}) {
    SCOPED_TRACE(testing::Message() << "C " << C);
    Data d = make_data(4, C, 1);
    std::fill(d.s.begin(), d.s.end(), 0.0);
    std::fill(d.w.begin(), d.w.end(), 0.3);
    for (int64_t i = 0; i < d.N; ++i)
      if (d.y[size_t(i)] != kIgnore) d.s[size_t(i * C + d.y[size_t(i)])] = 2.0;
    const vector<float> s = cast<float>(d.s), w = cast<float>(d.w);
    const Result want = reference(d, d.s, d.w);
    const Result got = run_lanes(GetParam(), d, s, w);
    expect_close(got.loss, want.loss, kLossAtol, kLossRtol, "row_loss");
    expect_close(got.grad_s, want.grad_s, 1e-7, 1e-5, "grad_student");
  }
}

// Each row is computed by one thread: splitting the rows differently gives identical bits.
TEST_P(USKDLanes, RowSplitDoesNotChangeResults) {
  for (int64_t C : {9L, 100L, 1000L}) {
    const Data d = make_data(7, C, 5);
    const vector<float> s = cast<float>(d.s), w = cast<float>(d.w);
    const Result whole = run_lanes(GetParam(), d, s, w);
    for (int64_t split : {1L, 4L, 6L}) {
      const Result parts = run_lanes(GetParam(), d, s, w, split);
      EXPECT_EQ(parts.loss, whole.loss) << "C " << C << " split " << split;
      EXPECT_EQ(parts.grad_s, whole.grad_s) << "C " << C << " split " << split;
      EXPECT_EQ(parts.grad_w, whole.grad_w) << "C " << C << " split " << split;
    }
  }
}

// lane_counting_ranks against the comparator order, with ties, ±0, ±inf and subnormals.
template <int W> vector<float> counting_ranks(const vector<float>& v) {
  vector<float> rank1(v.size(), -1.0f);
  const auto body = [&](auto) FUSEDKD_LANES_INLINE_LAMBDA {
    cpu::detail::lane_counting_ranks<W>(int64_t(v.size()), v.data(), rank1.data());
  };
#if FUSEDKD_CPU_AVX2_DISPATCH
  if constexpr (W == cpu::kAvx2Lanes) {
    cpu::detail::with_avx2_lanes(body);
    return rank1;
  }
#endif
  cpu::detail::with_baseline_lanes(body);
  return rank1;
}

TEST_P(USKDLanes, CountingRanksMatchTheComparator) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 5.0f);
  const float specials[] = {0.0f,  -0.0f, 1.0f, -1.0f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::denorm_min(),
                            -std::numeric_limits<float>::denorm_min()};
  for (int64_t C = width(); C <= cpu::detail::kCountingRankColumnsPerLane * width(); ++C) {
    vector<float> v(static_cast<size_t>(C));
    for (auto& x : v) x = rng() % 10 < 4 ? specials[rng() % 8] : normal(rng);
    vector<int64_t> order(v.size());
    std::iota(order.begin(), order.end(), int64_t(0));
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return uskd_rank_before(v[a], a, v[b], b); });
    const vector<float> rank1 = GetParam() == Lane::Avx2 ? counting_ranks<cpu::kAvx2Lanes>(v)
                                                         : counting_ranks<cpu::kBaselineLanes>(v);
    for (int64_t k = 0; k < C; ++k)
      ASSERT_EQ(rank1[size_t(order[size_t(k)])], float(k + 1)) << "C " << C << " rank " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, USKDLanes, ::testing::Values(Lane::Baseline, Lane::Avx2),
                         [](const ::testing::TestParamInfo<Lane>& info) {
                           return info.param == Lane::Avx2 ? "Avx2" : "Baseline";
                         });

}  // namespace
