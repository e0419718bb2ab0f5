// Precision items of issue #15 ("Wrong numbers" 1, 4 and 5):
//   - USKD with a confident weak head: 1 − p_w,y from the non-target sum, against fp64;
//   - probabilities in the gradient from exp(x/τ − m) and log z kept apart (not one rounded lse),
//     at logits ×10 and ×30, on the scalar fp32 path (C < W rows, the CUDA kernels' code) and the lanes;
//   - temperatures outside the well-conditioned range of the accumulation type are rejected, and the
//     range's ends are accurate.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <fusedkd/fusedkd.hpp>

#include "test_support.hpp"

using namespace fusedkd;
using std::int64_t;
using std::vector;

namespace {

struct UskdOut {
  vector<double> loss, gs, gw;
};

template <class T>
UskdOut uskd_run(const vector<double>& s_in, const vector<double>& w_in, const vector<int64_t>& y, int64_t N, int64_t C,
                 bool scalar = false) {
  using A = acc_t<T>;
  const auto s = test_support::cast<T>(s_in), w = test_support::cast<T>(w_in);
  vector<A> loss(static_cast<size_t>(N));
  vector<T> gs(static_cast<size_t>(N * C)), gw(static_cast<size_t>(N * C));
  const cpu::StudentWeakView<T, T> x{s.data(), C, w.data(), C, N, C};
  const LabelsView<int64_t> labels{y.data(), -100};
  cpu::USKDOutputs<A, T> out;
  out.row_loss = loss.data();
  out.grad_student = gs.data();
  out.grad_student_row_stride = C;
  out.grad_weak = gw.data();
  out.grad_weak_row_stride = C;
  if (scalar) {
    if constexpr (std::is_same_v<A, float>) {
      vector<USKDRowStats<A>> st(static_cast<size_t>(N));
      cpu::detail::uskd_stats_rows_scalar(USKDParams{}, x, labels, st.data(), 0, N);
      cpu::detail::uskd_rows_scalar(USKDParams{}, x, labels, st.data(), cpu::uskd_mean_u(st.data(), labels, N), out, 0, N);
    }
  } else {
    cpu::uskd(USKDParams{}, x, labels, Reduction::None, out);
  }
  UskdOut r;
  for (A v : loss) r.loss.push_back(double(v));
  r.gs = test_support::back(gs);
  r.gw = test_support::back(gw);
  return r;
}

TEST(Precision, UskdConfidentWeakHeadReproFromTheIssue) {
  const vector<double> s{0., -1., -2., 2.}, w{-1., 30., 16., 0.};
  const vector<int64_t> y{1};
  const double want = uskd_run<double>(s, w, y, 1, 4).loss[0];
  EXPECT_NEAR(want, 3.362697, 1e-6);
  EXPECT_NEAR(uskd_run<float>(s, w, y, 1, 4).loss[0], want, 2e-6);
}

// Weak logits scaled ×1, ×10 and ×30, the label the weak head's favourite by a gap that puts
// 1 − p_w,y between 1e-4 and 1e-8 (where fp32 lse(w) rounds it away), C = 4 (scalar rows) and 13, 40
// (lanes); every fp32 path against fp64 on the same inputs.
TEST(Precision, UskdConfidentWeakHeadMatchesFp64) {
  for (double scale : {1.0, 10.0, 30.0})
    for (int64_t C : {int64_t(4), int64_t(13), int64_t(40)}) {
      const int64_t N = 32;
      std::mt19937 rng{unsigned(C * 7 + scale)};
      std::normal_distribution<double> normal(0.0, 1.0);
      vector<double> s(static_cast<size_t>(N * C)), w(static_cast<size_t>(N * C));
      vector<int64_t> y(static_cast<size_t>(N));
      for (int64_t i = 0; i < N; ++i) {
        y[size_t(i)] = int64_t(rng() % std::uint64_t(C));
        double top = -1e300;
        for (int64_t j = 0; j < C; ++j) {
          s[size_t(i * C + j)] = 2.0 * normal(rng);
          w[size_t(i * C + j)] = scale * normal(rng);
          if (j != y[size_t(i)]) top = std::max(top, w[size_t(i * C + j)]);
        }
        const double gap = 9.0 + double(i % 10);  // 1 − p_w,y ≈ e^−gap … C e^−gap
        w[size_t(i * C + y[size_t(i)])] = std::round(top + gap);
      }
      // fp64 on the values fp32 holds
      const auto sf = test_support::back(test_support::cast<float>(s)), wf = test_support::back(test_support::cast<float>(w));
      const UskdOut ref = uskd_run<double>(sf, wf, y, N, C);
      for (bool scalar : {false, true}) {
        const UskdOut got = uskd_run<float>(sf, wf, y, N, C, scalar);
        const std::string what = "scale " + std::to_string(scale) + " C " + std::to_string(C) + (scalar ? " scalar" : "");
        test_support::expect_close(got.loss, ref.loss, 1e-5, 1e-5, (what + " loss").c_str());
        test_support::expect_close(got.gs, ref.gs, 1e-5, 1e-5, (what + " grad_s").c_str());
        test_support::expect_close(got.gw, ref.gw, 1e-7, 1e-5, (what + " grad_w").c_str());
      }
    }
}

enum class Path { Scalar, Lanes };

template <template <class> class Loss, class Params, class T>
vector<double> grads(const Params& p, const vector<double>& s_in, const vector<double>& t_in, const vector<int64_t>& y,
                     int64_t N, int64_t C, Path path) {
  using A = acc_t<T>;
  const auto s = test_support::cast<T>(s_in), t = test_support::cast<T>(t_in);
  vector<A> loss(static_cast<size_t>(N));
  vector<T> g(static_cast<size_t>(N * C));
  const LogitsView<T> x{s.data(), C, t.data(), C, N, C};
  const LabelsView<int64_t> labels{Loss<A>::uses_label ? y.data() : nullptr, -100};
  const RowOutputs<A, T> out{loss.data(), g.data(), C};
  if constexpr (std::is_same_v<A, float>) {
    if (path == Path::Scalar)
      cpu::detail::run_rows_scalar<Loss>(p, x, labels, out, 0, N);
    else
      cpu::run_rows<Loss>(p, x, labels, out, 0, N);
  } else {
    cpu::run_rows<Loss>(p, x, labels, out, 0, N);
  }
  return test_support::back(g);
}

// |g32 − g64| ≤ bound · ε_fp32 · τ · (sum of the loss's weights): with p = exp((x/τ − m) − log z) the
// error of a probability is a few ε absolute, whatever |lse|; with exp(x/τ − lse) it is ε·|lse|·p.
template <template <class> class Loss, class Params>
void expect_precise_grads(const Params& p, double tau, double weights, const char* name) {
  for (double scale : {10.0, 30.0})
    for (int64_t C : {int64_t(5), int64_t(6), int64_t(24)})
      for (Path path : {Path::Scalar, Path::Lanes}) {
        const int64_t N = 64;
        std::mt19937 rng{unsigned(C + 100 * scale)};
        std::normal_distribution<double> normal(0.0, 3.0);
        vector<double> s(static_cast<size_t>(N * C)), t(static_cast<size_t>(N * C));
        vector<int64_t> y(static_cast<size_t>(N));
        for (auto& v : s) v = double(float(scale * normal(rng)));
        for (auto& v : t) v = double(float(scale * normal(rng)));
        for (auto& v : y) v = int64_t(rng() % std::uint64_t(C));
        const auto g64 = grads<Loss, Params, double>(p, s, t, y, N, C, path);
        const auto g32 = grads<Loss, Params, float>(p, s, t, y, N, C, path);
        double worst = 0;
        for (size_t k = 0; k < g64.size(); ++k) worst = std::max(worst, std::abs(g32[k] - g64[k]));
        const double eps = std::numeric_limits<float>::epsilon();
        EXPECT_LE(worst, 8 * eps * tau * weights) << name << " scale " << scale << " C " << C
                                                  << (path == Path::Scalar ? " scalar" : " lanes") << ": worst "
                                                  << worst / (eps * tau * weights) << " ε·τ·Σw";
      }
}

TEST(Precision, GradientProbabilitiesKeepMaxAndLogZApart) {
  expect_precise_grads<KD>(KDParams{1.0}, 1.0, 1.0, "kd τ=1");
  expect_precise_grads<KD>(KDParams{4.0}, 4.0, 1.0, "kd τ=4");
  expect_precise_grads<DKD>(DKDParams{1.0, 8.0, 1.0}, 1.0, 9.0, "dkd τ=1");
  expect_precise_grads<NKD>(NKDParams{1.0, 1.5}, 1.0, 2.5, "nkd τ=1");
  expect_precise_grads<NKD>(NKDParams{2.0, 1.5}, 2.0, 2.5, "nkd τ=2");
  expect_precise_grads<RLD>(RLDParams{1.0, 8.0, 1.0, 1.0, false}, 1.0, 9.0, "rld τ=1");
}

// USKD's gradients (p_s, q_s, p_w with m and log z apart) at student and weak logits ×10 and ×30.
TEST(Precision, UskdGradientProbabilitiesKeepMaxAndLogZApart) {
  const double eps = std::numeric_limits<float>::epsilon();
  for (double scale : {10.0, 30.0})
    for (int64_t C : {int64_t(5), int64_t(24)})
      for (bool scalar : {true, false}) {
        const int64_t N = 64;
        std::mt19937 rng{unsigned(C + 1000 * scale)};
        std::normal_distribution<double> normal(0.0, 3.0);
        vector<double> s(static_cast<size_t>(N * C)), w(static_cast<size_t>(N * C));
        vector<int64_t> y(static_cast<size_t>(N));
        for (auto& v : s) v = double(float(scale * normal(rng)));
        for (auto& v : w) v = double(float(scale * normal(rng)));
        for (auto& v : y) v = int64_t(rng() % std::uint64_t(C));
        const UskdOut ref = uskd_run<double>(s, w, y, N, C), got = uskd_run<float>(s, w, y, N, C, scalar);
        double worst_s = 0, worst_w = 0;
        for (size_t k = 0; k < ref.gs.size(); ++k) {
          worst_s = std::max(worst_s, std::abs(got.gs[k] - ref.gs[k]));
          worst_w = std::max(worst_w, std::abs(got.gw[k] - ref.gw[k]));
        }
        const USKDParams p;
        const std::string what = "scale " + std::to_string(scale) + " C " + std::to_string(C) + (scalar ? " scalar" : " lanes");
        EXPECT_LE(worst_s, 8 * eps * (2 * p.alpha + p.beta)) << what << ": worst " << worst_s / eps << " ε";
        EXPECT_LE(worst_w, 8 * eps * p.mu) << what << ": worst " << worst_w / (eps * p.mu) << " ε·μ";
      }
}

// Temperatures: accepted in [1e-4, 1e2] with fp32 accumulation (fp32/fp16/bf16 logits) and in
// [1e-8, 1e6] with fp64; rejected outside, naming the argument.
template <class T> bool kd_accepts(double tau) {
  const vector<T> s(8, from_acc<T>(acc_t<T>(0.5))), t(8, from_acc<T>(acc_t<T>(0.25)));
  vector<acc_t<T>> loss(1);
  try {
    cpu::kd(KDParams{tau}, LogitsView<T>{s.data(), 8, t.data(), 8, 1, 8}, Reduction::Sum,
            RowOutputs<acc_t<T>, T>{loss.data(), nullptr, 0});
    return true;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("temperature"), std::string::npos) << e.what();
    return false;
  }
}

TEST(Precision, TemperatureRangeDependsOnTheAccumulationType) {
  for (double tau : {1e-4, 1e-2, 1.0, 4.0, 100.0}) EXPECT_TRUE(kd_accepts<float>(tau)) << tau;
  for (double tau : {1e-45, 1e-20, 9e-5, 101.0, 1e4, 1e6, 1e20}) EXPECT_FALSE(kd_accepts<float>(tau)) << tau;
  for (double tau : {1e-45, 1e-20, 9e-5, 101.0, 1e4}) EXPECT_FALSE(kd_accepts<bfloat16_t>(tau)) << tau;
  for (double tau : {1e-8, 1e-4, 1.0, 1e4, 1e6}) EXPECT_TRUE(kd_accepts<double>(tau)) << tau;
  for (double tau : {1e-45, 9e-9, 1.1e6, 1e20}) EXPECT_FALSE(kd_accepts<double>(tau)) << tau;
  // every temperature parameter, every loss (fp32)
  const vector<float> s(8, 0.5f), t(8, 0.25f);
  const vector<int64_t> y{1};
  vector<float> loss(1);
  const LogitsView<float> x{s.data(), 8, t.data(), 8, 1, 8};
  const LabelsView<int64_t> lab{y.data(), -100};
  const RowOutputs<float, float> out{loss.data(), nullptr, 0};
  EXPECT_THROW(cpu::dkd(DKDParams{1.0, 8.0, 1e3}, x, lab, Reduction::Sum, out), Error);
  EXPECT_THROW(cpu::nkd(NKDParams{1e3, 1.5}, x, lab, Reduction::Sum, out), Error);
  EXPECT_THROW(cpu::rld(RLDParams{1.0, 8.0, 1e3, 1.0, false}, x, lab, Reduction::Sum, out), Error);
  EXPECT_THROW(cpu::rld(RLDParams{1.0, 8.0, 4.0, 1e-6, false}, x, lab, Reduction::Sum, out), Error);
}

// At the ends of the accepted range the fp32 losses stay close to fp64, and never negative.
TEST(Precision, TemperatureRangeEndsAreAccurate) {
  const int64_t N = 64;
  for (int64_t C : {int64_t(5), int64_t(100), int64_t(1000)})
    for (double tau : {1e-4, 100.0}) {
      std::mt19937 rng{unsigned(C)};
      std::normal_distribution<double> normal(0.0, 3.0);
      vector<double> s(static_cast<size_t>(N * C)), t(static_cast<size_t>(N * C));
      for (auto& v : s) v = double(float(normal(rng)));
      for (auto& v : t) v = double(float(normal(rng)));
      vector<int64_t> y(static_cast<size_t>(N));
      for (auto& v : y) v = int64_t(rng() % std::uint64_t(C));
      const auto run = [&](auto zero, bool dkd) {
        using T = decltype(zero);
        const auto sv = test_support::cast<T>(s), tv = test_support::cast<T>(t);
        vector<T> loss(static_cast<size_t>(N));
        const LogitsView<T> x{sv.data(), C, tv.data(), C, N, C};
        const RowOutputs<T, T> out{loss.data(), nullptr, 0};
        const T total = dkd ? cpu::dkd(DKDParams{1.0, 8.0, tau}, x, LabelsView<int64_t>{y.data(), -100}, Reduction::Sum, out)
                            : cpu::kd(KDParams{tau}, x, Reduction::Sum, out);
        for (T v : loss) EXPECT_GE(v, T(0)) << (dkd ? "dkd" : "kd") << " τ " << tau << " C " << C;
        return double(total);
      };
      for (bool dkd : {false, true}) {
        const double want = run(0.0, dkd), got = run(0.0f, dkd);
        EXPECT_NEAR(got, want, 1e-3 * std::abs(want) + 1e-6) << (dkd ? "dkd" : "kd") << " τ " << tau << " C " << C;
      }
    }
}

}  // namespace
