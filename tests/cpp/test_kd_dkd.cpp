// KD and DKD on the CPU executor: values vs a naive float64 implementation, gradients vs
// central finite differences, reductions, ignore_index and argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <string>
#include <random>
#include <vector>

#include <fusedkd/fusedkd.hpp>

#include "naive_reference.hpp"

namespace {

using fusedkd::Reduction;

struct Batch {
  long long N, C;
  std::vector<double> s, t;
  std::vector<long long> y;
};

Batch random_batch(long long N, long long C, double scale, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::uniform_int_distribution<long long> label(0, C - 1);
  Batch b{N, C, std::vector<double>(N * C), std::vector<double>(N * C), std::vector<long long>(N)};
  for (auto& v : b.s) v = normal(rng);
  for (auto& v : b.t) v = normal(rng);
  for (auto& v : b.y) v = label(rng);
  return b;
}

std::vector<double> row(const std::vector<double>& x, long long i, long long C) {
  return std::vector<double>(x.begin() + i * C, x.begin() + (i + 1) * C);
}

template <class T> std::vector<T> cast(const std::vector<double>& x) {
  std::vector<T> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = T(x[i]);
  return out;
}

// Per-row losses and the (unscaled, reduction "none") gradient from the executor.
template <class T> struct Run {
  std::vector<fusedkd::acc_t<T>> loss;
  std::vector<T> grad;
};

template <class T> Run<T> run_kd(const Batch& b, double tau) {
  auto s = cast<T>(b.s), t = cast<T>(b.t);
  Run<T> r{std::vector<fusedkd::acc_t<T>>(b.N), std::vector<T>(b.N * b.C)};
  fusedkd::cpu::kd(fusedkd::KDParams{tau}, fusedkd::LogitsView<T>{s.data(), b.C, t.data(), b.C, b.N, b.C},
                   Reduction::None, fusedkd::RowOutputs<fusedkd::acc_t<T>, T>{r.loss.data(), r.grad.data(), b.C});
  return r;
}

template <class T> Run<T> run_dkd(const Batch& b, fusedkd::DKDParams p, long long ignore = -100) {
  auto s = cast<T>(b.s), t = cast<T>(b.t);
  Run<T> r{std::vector<fusedkd::acc_t<T>>(b.N), std::vector<T>(b.N * b.C)};
  fusedkd::cpu::dkd(p, fusedkd::LogitsView<T>{s.data(), b.C, t.data(), b.C, b.N, b.C},
                    fusedkd::LabelsView<long long>{b.y.data(), ignore}, Reduction::None,
                    fusedkd::RowOutputs<fusedkd::acc_t<T>, T>{r.loss.data(), r.grad.data(), b.C});
  return r;
}

// |a − b| ≤ atol + rtol·|b|
void expect_close(double got, double want, double rtol, double atol, const char* what) {
  EXPECT_LE(std::abs(got - want), atol + rtol * std::abs(want)) << what << ": got " << got << " want " << want;
}

struct Case {
  long long C;
  double scale, tau;
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  return os << "C" << c.C << "_scale" << c.scale << "_tau" << c.tau;
}

class KDValues : public ::testing::TestWithParam<Case> {};

// float64 executor: 1e-9 relative to the naive float64 loss; float32: 1e-4 relative plus an
// absolute term proportional to τ²·|logit|·2^-23 (the cancellation in lse_t − lse_s).
TEST_P(KDValues, KDMatchesNaiveFloat64) {
  const Case c = GetParam();
  const Batch b = random_batch(5, c.C, c.scale, unsigned(c.C * 7 + 1));
  const auto r64 = run_kd<double>(b, c.tau);
  const auto r32 = run_kd<float>(b, c.tau);
  for (long long i = 0; i < b.N; ++i) {
    const double want = naive::kd(row(b.s, i, b.C), row(b.t, i, b.C), c.tau);
    expect_close(r64.loss[i], want, 1e-9, 1e-9 * c.tau * c.scale, "kd f64");
    expect_close(r32.loss[i], want, 1e-4, 1e-5 * c.tau * c.tau * (1 + c.scale) * std::log(double(c.C) + 1), "kd f32");
  }
}

TEST_P(KDValues, DKDMatchesNaiveFloat64) {
  const Case c = GetParam();
  const Batch b = random_batch(5, std::max(c.C, 2LL), c.scale, unsigned(c.C * 13 + 3));  // DKD needs C >= 2
  const fusedkd::DKDParams p{1.0, 8.0, c.tau};
  const auto r64 = run_dkd<double>(b, p);
  const auto r32 = run_dkd<float>(b, p);
  for (long long i = 0; i < b.N; ++i) {
    const double want = naive::dkd(row(b.s, i, b.C), row(b.t, i, b.C), b.y[i], 1.0, 8.0, c.tau);
    expect_close(r64.loss[i], want, 1e-9, 1e-9 * c.tau * c.scale, "dkd f64");
    expect_close(r32.loss[i], want, 1e-4, 1e-4 * c.tau * c.tau * (1 + c.scale) * std::log(double(c.C) + 1), "dkd f32");
  }
}

INSTANTIATE_TEST_SUITE_P(Grid, KDValues,
                         ::testing::Values(Case{1, 1, 4}, Case{2, 1, 4}, Case{10, 3, 0.5}, Case{100, 1, 1},
                                           Case{1000, 5, 4}, Case{4097, 2, 16}, Case{50000, 1, 4},
                                           Case{7, 1e4, 4}, Case{100, 1e4, 0.5}, Case{1000, 1e4, 16}),
                         [](const auto& info) { return "case" + std::to_string(info.index); });

// Central differences in float64: h = 1e-5, agreement to 1e-6 (abs) + 1e-5 (rel).
template <class F> void check_gradient(Batch b, F loss_and_grad) {
  std::vector<double> loss, grad;
  loss_and_grad(b, loss, grad);
  const double h = 1e-5;
  for (long long i = 0; i < b.N; ++i)
    for (long long j = 0; j < b.C; ++j) {
      Batch plus = b, minus = b;
      plus.s[i * b.C + j] += h;
      minus.s[i * b.C + j] -= h;
      std::vector<double> lp, lm, unused;
      loss_and_grad(plus, lp, unused);
      loss_and_grad(minus, lm, unused);
      const double fd = (lp[i] - lm[i]) / (2 * h);
      expect_close(grad[i * b.C + j], fd, 1e-5, 1e-6, "grad vs finite difference");
    }
}

TEST(KDGradient, MatchesFiniteDifferences) {
  for (double tau : {0.5, 1.0, 4.0, 16.0})
    check_gradient(random_batch(3, 11, 2.0, 5), [tau](const Batch& b, auto& loss, auto& grad) {
      auto r = run_kd<double>(b, tau);
      loss = r.loss;
      grad = r.grad;
    });
}

TEST(DKDGradient, MatchesFiniteDifferences) {
  for (double tau : {0.5, 1.0, 4.0, 16.0})
    check_gradient(random_batch(3, 11, 2.0, 9), [tau](const Batch& b, auto& loss, auto& grad) {
      auto r = run_dkd<double>(b, fusedkd::DKDParams{1.5, 0.5, tau});
      loss = r.loss;
      grad = r.grad;
    });
}

TEST(Reductions, BatchMeanSumAndScaledGradient) {
  Batch b = random_batch(6, 9, 2.0, 21);
  b.y[2] = -100;
  b.y[4] = -100;
  const auto none = run_dkd<double>(b, fusedkd::DKDParams{});
  EXPECT_EQ(none.loss[2], 0.0);
  for (long long j = 0; j < b.C; ++j) EXPECT_EQ(none.grad[2 * b.C + j], 0.0);
  double total = 0;
  for (double v : none.loss) total += v;

  std::vector<double> g(b.N * b.C);
  const fusedkd::LogitsView<double> x{b.s.data(), b.C, b.t.data(), b.C, b.N, b.C};
  const fusedkd::LabelsView<long long> labels{b.y.data(), -100};
  const double mean = fusedkd::cpu::dkd(fusedkd::DKDParams{}, x, labels, Reduction::BatchMean,
                                        fusedkd::RowOutputs<double, double>{nullptr, g.data(), b.C});
  EXPECT_NEAR(mean, total / 4.0, 1e-12);  // 4 rows count
  for (size_t k = 0; k < g.size(); ++k) EXPECT_NEAR(g[k], none.grad[k] / 4.0, 1e-15);
  const double sum = fusedkd::cpu::dkd(fusedkd::DKDParams{}, x, labels, Reduction::Sum,
                                       fusedkd::RowOutputs<double, double>{nullptr, g.data(), b.C});
  EXPECT_NEAR(sum, total, 1e-12);
}

TEST(Reductions, EmptyAndFullyIgnoredBatchesGiveZero) {
  Batch b = random_batch(3, 5, 1.0, 2);
  for (auto& y : b.y) y = -1;
  std::vector<double> g(b.N * b.C, 42.0);
  const double mean = fusedkd::cpu::dkd(
      fusedkd::DKDParams{}, fusedkd::LogitsView<double>{b.s.data(), b.C, b.t.data(), b.C, b.N, b.C},
      fusedkd::LabelsView<long long>{b.y.data(), -1}, Reduction::BatchMean,
      fusedkd::RowOutputs<double, double>{nullptr, g.data(), b.C});
  EXPECT_EQ(mean, 0.0);
  for (double v : g) EXPECT_EQ(v, 0.0);
  const double empty = fusedkd::cpu::kd(fusedkd::KDParams{}, fusedkd::LogitsView<double>{nullptr, 5, nullptr, 5, 0, 5},
                                        Reduction::BatchMean, fusedkd::RowOutputs<double, double>{});
  EXPECT_EQ(empty, 0.0);
}

TEST(RowStrides, PaddedRowsGiveTheSameResult) {
  const Batch b = random_batch(4, 7, 2.0, 3);
  const long long ld = 10;  // padded rows
  std::vector<float> s(b.N * ld, NAN), t(b.N * ld, NAN), g(b.N * ld, 0.f);
  for (long long i = 0; i < b.N; ++i)
    for (long long j = 0; j < b.C; ++j) s[i * ld + j] = float(b.s[i * b.C + j]), t[i * ld + j] = float(b.t[i * b.C + j]);
  std::vector<float> loss(b.N);
  fusedkd::cpu::dkd(fusedkd::DKDParams{}, fusedkd::LogitsView<float>{s.data(), ld, t.data(), ld, b.N, b.C},
                    fusedkd::LabelsView<long long>{b.y.data(), -100}, Reduction::None,
                    fusedkd::RowOutputs<float, float>{loss.data(), g.data(), ld});
  const auto dense = run_dkd<float>(b, fusedkd::DKDParams{});
  for (long long i = 0; i < b.N; ++i) {
    EXPECT_EQ(loss[i], dense.loss[i]);
    for (long long j = 0; j < b.C; ++j) EXPECT_EQ(g[i * ld + j], dense.grad[i * b.C + j]);
  }
}

TEST(HalfTypes, Bfloat16AndHalfInputsMatchFloatOfTheRoundedValues) {
  const Batch b = random_batch(4, 300, 3.0, 17);
  Batch rounded = b;
  std::vector<fusedkd::bfloat16_t> s(b.s.size()), t(b.t.size()), g(b.s.size());
  for (size_t k = 0; k < b.s.size(); ++k) {
    s[k] = fusedkd::from_acc<fusedkd::bfloat16_t>(float(b.s[k]));
    t[k] = fusedkd::from_acc<fusedkd::bfloat16_t>(float(b.t[k]));
    rounded.s[k] = fusedkd::to_acc(s[k]);
    rounded.t[k] = fusedkd::to_acc(t[k]);
  }
  std::vector<float> loss(b.N);
  fusedkd::cpu::kd(fusedkd::KDParams{}, fusedkd::LogitsView<fusedkd::bfloat16_t>{s.data(), b.C, t.data(), b.C, b.N, b.C},
                   Reduction::None, fusedkd::RowOutputs<float, fusedkd::bfloat16_t>{loss.data(), g.data(), b.C});
  const auto ref = run_kd<float>(rounded, 4.0);
  for (long long i = 0; i < b.N; ++i) EXPECT_EQ(loss[i], ref.loss[i]);
  // The gradient is written in bf16: within half a bf16 ulp (2^-9 relative) of the float one.
  for (size_t k = 0; k < g.size(); ++k) expect_close(fusedkd::to_acc(g[k]), ref.grad[k], 1.0 / 256, 1e-30, "bf16 grad");
}

TEST(Conversions, HalfRoundTripsEveryBitPattern) {
  for (unsigned u = 0; u < 65536; ++u) {
    const fusedkd::half_t h{std::uint16_t(u)};
    const float f = fusedkd::to_acc(h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(fusedkd::from_acc<fusedkd::half_t>(f).bits, u) << "bits " << u;
  }
  // Ties round to even; overflow goes to inf.
  EXPECT_EQ(fusedkd::from_acc<fusedkd::half_t>(1.0f + 1.0f / 2048).bits, 0x3c00);
  EXPECT_EQ(fusedkd::from_acc<fusedkd::half_t>(65520.0f).bits, 0x7c00);
  EXPECT_EQ(fusedkd::from_acc<fusedkd::bfloat16_t>(1.0f + 1.0f / 256).bits, 0x3f80);
}

TEST(Errors, BadArgumentsThrowNamingTheArgument) {
  Batch b = random_batch(2, 4, 1.0, 1);
  std::vector<double> loss(2);
  const fusedkd::LogitsView<double> x{b.s.data(), b.C, b.t.data(), b.C, b.N, b.C};
  const fusedkd::RowOutputs<double, double> out{loss.data(), nullptr, 0};
  auto message_of = [](auto&& f) {
    try {
      f();
    } catch (const fusedkd::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  b.y[1] = 4;
  EXPECT_NE(message_of([&] {
              fusedkd::cpu::dkd(fusedkd::DKDParams{}, x, fusedkd::LabelsView<long long>{b.y.data(), -100},
                                Reduction::None, out);
            }).find("target: label 4 at row 1"),
            std::string::npos);
  b.y[1] = 0;
  EXPECT_NE(message_of([&] { fusedkd::cpu::kd(fusedkd::KDParams{0.0}, x, Reduction::None, out); }).find("temperature"),
            std::string::npos);
  EXPECT_NE(message_of([&] { fusedkd::cpu::kd(fusedkd::KDParams{NAN}, x, Reduction::None, out); }).find("temperature"),
            std::string::npos);
  const fusedkd::LogitsView<double> one_class{b.s.data(), 1, b.t.data(), 1, b.N, 1};
  std::vector<long long> zeros(2, 0);
  EXPECT_NE(message_of([&] {
              fusedkd::cpu::dkd(fusedkd::DKDParams{}, one_class, fusedkd::LabelsView<long long>{zeros.data(), -100},
                                Reduction::None, out);
            }).find("at least 2 classes"),
            std::string::npos);
}

}  // namespace
