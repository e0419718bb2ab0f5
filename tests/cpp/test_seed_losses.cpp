// NKD, RLD (both standardization modes) and USKD: the CPU executor against naive float64
// implementations written here (plain loops, nothing shared with the library), and the
// executor's gradients against central finite differences in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include <fusedkd/fusedkd.hpp>

#include "test_support.hpp"

using namespace fusedkd;
using std::int64_t;
using std::vector;

namespace {

// ---------------------------------------------------------------------------------------------
// Test data

enum class LabelMode { Random, TeacherTop, TeacherLowest, Cycle };

struct Batch {
  int64_t N = 0, C = 0;
  vector<double> s, t;  // student, teacher (USKD: t holds the weak logits)
  vector<int64_t> y;
};

// Logits: normal(0, scale) or, with extreme = true, uniform in [−1e4, 1e4] with a few pinned
// at ±1e4. Labels per mode; Cycle rotates Random / TeacherTop / TeacherLowest over the rows.
Batch make_batch(int64_t N, int64_t C, double scale, unsigned seed, LabelMode mode, bool extreme = false) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::uniform_real_distribution<double> uni(-1e4, 1e4);
  Batch b;
  b.N = N;
  b.C = C;
  b.s.resize(size_t(N * C));
  b.t.resize(size_t(N * C));
  b.y.resize(size_t(N));
  for (size_t k = 0; k < b.s.size(); ++k) {
    b.s[k] = extreme ? uni(rng) : normal(rng);
    b.t[k] = extreme ? uni(rng) : normal(rng);
  }
  for (int64_t i = 0; i < N; ++i) {
    double* s = &b.s[size_t(i * C)];
    double* t = &b.t[size_t(i * C)];
    if (extreme) {
      s[rng() % C] = 1e4;
      t[rng() % C] = -1e4;
    }
    LabelMode m = mode == LabelMode::Cycle ? LabelMode(i % 3) : mode;
    int64_t y = int64_t(rng() % uint64_t(C));
    if (m == LabelMode::TeacherTop) y = std::max_element(t, t + C) - t;
    if (m == LabelMode::TeacherLowest) y = std::min_element(t, t + C) - t;
    b.y[size_t(i)] = y;
  }
  return b;
}

using test_support::back;
using test_support::cast;
using test_support::expect_close;
// The batch as T would store it, read back exactly.
template <class T> Batch rounded(Batch b) {
  b.s = back(cast<T>(b.s));
  b.t = back(cast<T>(b.t));
  return b;
}

struct Result {
  double loss = 0;
  vector<double> row_loss, grad, grad2;  // grad2: USKD's ∂/∂w
};

int64_t counted_rows(const Batch& b) {
  int64_t n = 0;
  for (int64_t y : b.y) n += y == -100 ? 0 : 1;
  return n;
}

// Turns per-row losses and per-row gradients into the reduced loss and scaled gradients.
void reduce(Result& r, const Batch& b, Reduction red) {
  const int64_t n = counted_rows(b);
  double total = 0;
  for (double v : r.row_loss) total += v;
  const double scale = red == Reduction::BatchMean ? (n > 0 ? 1.0 / double(n) : 0.0) : 1.0;
  r.loss = total * scale;
  for (double& g : r.grad) g *= scale;
  for (double& g : r.grad2) g *= scale;
}

// ---------------------------------------------------------------------------------------------
// Naive float64 references (stable log-sum-exp, otherwise plain loops)

double lse_over(const vector<double>& x, const vector<bool>& keep) {
  double m = -INFINITY;
  for (size_t j = 0; j < x.size(); ++j)
    if (keep[j]) m = std::max(m, x[j]);
  double z = 0;
  for (size_t j = 0; j < x.size(); ++j)
    if (keep[j]) z += std::exp(x[j] - m);
  return m + std::log(z);
}

vector<double> scaled(const double* x, int64_t C, double tau) {
  vector<double> o(static_cast<size_t>(C));
  for (int64_t j = 0; j < C; ++j) o[size_t(j)] = x[j] / tau;
  return o;
}

// NKD row: −p_t,y log p_s,y − γ τ² Σ_{j≠y} q_t,j log q_s,j and its gradient.
double naive_nkd_row(const double* s, const double* t, int64_t C, int64_t y, double tau, double gamma,
                     double* grad) {
  vector<bool> all(size_t(C), true), nt(size_t(C), true);
  nt[size_t(y)] = false;
  vector<double> s1(s, s + C), t1(t, t + C);
  const double lse_s = lse_over(s1, all), lse_t = lse_over(t1, all);
  const double pt_y = std::exp(t[y] - lse_t);
  double loss = -pt_y * (s[y] - lse_s);
  vector<double> st = scaled(s, C, tau), tt = scaled(t, C, tau);
  const double lq_s = lse_over(st, nt), lq_t = lse_over(tt, nt);
  double ce = 0;
  for (int64_t j = 0; j < C; ++j) {
    if (j == y) continue;
    ce += std::exp(tt[size_t(j)] - lq_t) * (st[size_t(j)] - lq_s);
  }
  loss += -gamma * tau * tau * ce;
  if (grad) {
    for (int64_t j = 0; j < C; ++j) {
      const double ps = std::exp(s[j] - lse_s);
      if (j == y) {
        double rest = 0;  // 1 − p_s,y as the non-target sum
        for (int64_t k = 0; k < C; ++k)
          if (k != y) rest += std::exp(s[k] - lse_s);
        grad[j] = -pt_y * rest;
      } else {
        grad[j] = pt_y * ps +
                  gamma * tau * (std::exp(st[size_t(j)] - lq_s) - std::exp(tt[size_t(j)] - lq_t));
      }
    }
  }
  return loss;
}

Result naive_nkd(const Batch& b, double tau, double gamma, Reduction red) {
  Result r;
  r.row_loss.assign(size_t(b.N), 0.0);
  r.grad.assign(size_t(b.N * b.C), 0.0);
  for (int64_t i = 0; i < b.N; ++i) {
    if (b.y[size_t(i)] == -100) continue;
    r.row_loss[size_t(i)] = naive_nkd_row(&b.s[size_t(i * b.C)], &b.t[size_t(i * b.C)], b.C, b.y[size_t(i)], tau,
                                          gamma, &r.grad[size_t(i * b.C)]);
  }
  reduce(r, b, red);
  return r;
}

// RLD row (optionally standardized): α SCD + β MCD and ∂/∂s of the raw row.
double naive_rld_row(const double* s_raw, const double* t_raw, int64_t C, int64_t y, double alpha, double beta,
                     double tau, double at, bool stand, double* grad) {
  vector<double> s(s_raw, s_raw + C), t(t_raw, t_raw + C);
  double mu = 0, sd = 0;
  if (stand) {
    auto standardize = [C](vector<double>& x, double& mean, double& stdev) {
      mean = 0;
      for (double v : x) mean += v;
      mean /= double(C);
      double ss = 0;
      for (double v : x) ss += (v - mean) * (v - mean);
      stdev = std::sqrt(ss / double(C - 1));
      for (double& v : x) v = (v - mean) / (1e-7 + stdev);
    };
    double mt, st;
    standardize(t, mt, st);
    standardize(s, mu, sd);
  }
  int64_t m = 0;
  for (int64_t j = 1; j < C; ++j)
    if (t[size_t(j)] > t[size_t(m)]) m = j;
  vector<bool> all(size_t(C), true), not_y(size_t(C), true), not_m(size_t(C), true);
  not_y[size_t(y)] = false;
  not_m[size_t(m)] = false;
  vector<double> sa = scaled(s.data(), C, at), ta = scaled(t.data(), C, at);
  const double ls = lse_over(sa, all), lt = lse_over(ta, all);
  const double lbs0 = sa[size_t(y)] - ls, lbs1 = lse_over(sa, not_y) - ls;
  const double lbt0 = ta[size_t(m)] - lt, lbt1 = lse_over(ta, not_m) - lt;
  auto kl = [](double lx, double ly) { return std::exp(lx) == 0 ? 0.0 : std::exp(lx) * (lx - ly); };
  const double scd = at * at * (kl(lbt0, lbs0) + kl(lbt1, lbs1));
  vector<bool> inK(static_cast<size_t>(C));
  bool any = false;
  for (int64_t j = 0; j < C; ++j) any |= (inK[size_t(j)] = t[size_t(j)] < t[size_t(y)]);
  vector<double> st = scaled(s.data(), C, tau), tt = scaled(t.data(), C, tau);
  double mcd = 0, lks = 0, lkt = 0;
  if (any) {
    lks = lse_over(st, inK);
    lkt = lse_over(tt, inK);
    for (int64_t j = 0; j < C; ++j)
      if (inK[size_t(j)]) mcd += kl(tt[size_t(j)] - lkt, st[size_t(j)] - lks);
    mcd *= tau * tau;
  }
  if (grad) {
    const double gap = std::exp(lbs0) - std::exp(lbt0);
    const double lnt = lse_over(sa, not_y);
    vector<double> g(static_cast<size_t>(C));
    for (int64_t j = 0; j < C; ++j) {
      double v = j == y ? alpha * at * gap : -alpha * at * gap * std::exp(sa[size_t(j)] - lnt);
      if (inK[size_t(j)]) v += beta * tau * (std::exp(st[size_t(j)] - lks) - std::exp(tt[size_t(j)] - lkt));
      g[size_t(j)] = v;
    }
    if (stand) {
      double gsum = 0, gx = 0;
      for (int64_t j = 0; j < C; ++j) {
        gsum += g[size_t(j)];
        gx += g[size_t(j)] * (s_raw[j] - mu);
      }
      const double den = sd + 1e-7;
      for (int64_t k = 0; k < C; ++k)
        grad[k] = (g[size_t(k)] - gsum / double(C)) / den - gx * (s_raw[k] - mu) / (den * den * double(C - 1) * sd);
    } else {
      for (int64_t j = 0; j < C; ++j) grad[j] = g[size_t(j)];
    }
  }
  return alpha * scd + beta * mcd;
}

Result naive_rld(const Batch& b, const RLDParams& p, Reduction red) {
  Result r;
  r.row_loss.assign(size_t(b.N), 0.0);
  r.grad.assign(size_t(b.N * b.C), 0.0);
  for (int64_t i = 0; i < b.N; ++i) {
    if (b.y[size_t(i)] == -100) continue;
    r.row_loss[size_t(i)] =
        naive_rld_row(&b.s[size_t(i * b.C)], &b.t[size_t(i * b.C)], b.C, b.y[size_t(i)], p.alpha, p.beta,
                      p.temperature, p.alpha_temperature, p.logit_standardization, &r.grad[size_t(i * b.C)]);
  }
  reduce(r, b, red);
  return r;
}

// USKD over the batch (t = weak logits). frozen_soft, when given, replaces soft_i (for finite
// differences: soft is a constant of the loss).
Result naive_uskd(const Batch& b, double alpha, double beta, double mu, Reduction red,
                  const vector<double>* frozen_soft = nullptr, vector<double>* soft_out = nullptr) {
  const int64_t C = b.C;
  Result r;
  r.row_loss.assign(size_t(b.N), 0.0);
  r.grad.assign(size_t(b.N * C), 0.0);
  r.grad2.assign(size_t(b.N * C), 0.0);
  vector<bool> all(size_t(C), true);
  vector<double> u(size_t(b.N), 0.0);
  double usum = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < b.N; ++i) {
    const int64_t y = b.y[size_t(i)];
    if (y == -100) continue;
    vector<double> s(&b.s[size_t(i * C)], &b.s[size_t(i * C)] + C);
    const double p = std::exp(s[size_t(y)] - lse_over(s, all));
    u[size_t(i)] = p * p;
    usum += p * p;
    ++n;
  }
  const double mean_u = n ? usum / double(n) : 0.0;
  if (soft_out) soft_out->assign(size_t(b.N), 0.0);
  for (int64_t i = 0; i < b.N; ++i) {
    const int64_t y = b.y[size_t(i)];
    if (y == -100) continue;
    vector<double> s(&b.s[size_t(i * C)], &b.s[size_t(i * C)] + C), w(&b.t[size_t(i * C)], &b.t[size_t(i * C)] + C);
    const double soft = frozen_soft ? (*frozen_soft)[size_t(i)] : u[size_t(i)] + 1.0 - mean_u;
    if (soft_out) (*soft_out)[size_t(i)] = soft;
    const double ls = lse_over(s, all), lw = lse_over(w, all);
    vector<bool> nt(size_t(C), true);
    nt[size_t(y)] = false;
    const double lnt = lse_over(s, nt);
    const double T = -soft * (s[size_t(y)] - ls);
    double W = 0;
    for (int64_t j = 0; j < C; ++j) W += -mu * ((j == y ? 0.9 : 0.0) + 0.1 / double(C)) * (w[size_t(j)] - lw);
    // Zipf labels: stable descending sort of the scores.
    const double pw_y = std::exp(w[size_t(y)] - lw), lps_y = s[size_t(y)] - ls;
    vector<double> score(static_cast<size_t>(C));
    for (int64_t j = 0; j < C; ++j)
      score[size_t(j)] =
          std::exp(w[size_t(j)] - lw) / (1 - pw_y + 1e-6) + (s[size_t(j)] - ls) / (1 - lps_y + 1e-6);
    vector<int64_t> order(static_cast<size_t>(C));
    std::iota(order.begin(), order.end(), int64_t(0));
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return score[size_t(a)] > score[size_t(c)]; });
    vector<double> z(size_t(C), 0.0);
    for (int64_t k = 0; k < C; ++k) z[size_t(order[size_t(k)])] = 1.0 / double(k + 1);
    z[size_t(y)] = 0;
    double zs = 0;
    for (double v : z) zs += v;
    for (double& v : z) v /= zs;
    double NT = 0;
    for (int64_t j = 0; j < C; ++j)
      if (j != y) NT += -z[size_t(j)] * (s[size_t(j)] - lnt);
    r.row_loss[size_t(i)] = alpha * T + beta * NT + W;
    for (int64_t j = 0; j < C; ++j) {
      const double ps = std::exp(s[size_t(j)] - ls);
      double g;
      if (j == y) {
        g = -alpha * soft * std::exp(lnt - ls);
      } else {
        g = alpha * soft * ps + beta * (std::exp(s[size_t(j)] - lnt) - z[size_t(j)]);
      }
      r.grad[size_t(i * C + j)] = g;
      r.grad2[size_t(i * C + j)] = mu * (std::exp(w[size_t(j)] - lw) - ((j == y ? 0.9 : 0.0) + 0.1 / double(C)));
    }
  }
  reduce(r, b, red);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Executor wrappers (T: storage type; accumulation acc_t<T>)

template <class T> Result exec_nkd(const Batch& b, const NKDParams& p, Reduction red) {
  using A = acc_t<T>;
  auto s = cast<T>(b.s), t = cast<T>(b.t);
  LogitsView<T, T> x{s.data(), b.C, t.data(), b.C, b.N, b.C};
  LabelsView<int64_t> l{b.y.data(), -100};
  vector<A> rl(size_t(b.N));
  vector<T> g(size_t(b.N * b.C));
  RowOutputs<A, T> out{rl.data(), g.data(), b.C, A(1)};
  Result r;
  r.loss = double(cpu::nkd(p, x, l, red, out));
  r.row_loss.assign(rl.begin(), rl.end());
  r.grad = back(g);
  return r;
}

template <class T> Result exec_rld(const Batch& b, const RLDParams& p, Reduction red) {
  using A = acc_t<T>;
  auto s = cast<T>(b.s), t = cast<T>(b.t);
  LogitsView<T, T> x{s.data(), b.C, t.data(), b.C, b.N, b.C};
  LabelsView<int64_t> l{b.y.data(), -100};
  vector<A> rl(size_t(b.N));
  vector<T> g(size_t(b.N * b.C));
  RowOutputs<A, T> out{rl.data(), g.data(), b.C, A(1)};
  Result r;
  r.loss = double(cpu::rld(p, x, l, red, out));
  r.row_loss.assign(rl.begin(), rl.end());
  r.grad = back(g);
  return r;
}

template <class T> Result exec_uskd(const Batch& b, const USKDParams& p, Reduction red) {
  using A = acc_t<T>;
  auto s = cast<T>(b.s), w = cast<T>(b.t);
  cpu::StudentWeakView<T, T> x{s.data(), b.C, w.data(), b.C, b.N, b.C};
  LabelsView<int64_t> l{b.y.data(), -100};
  vector<A> rl(size_t(b.N));
  vector<T> gs(size_t(b.N * b.C)), gw(size_t(b.N * b.C));
  cpu::USKDOutputs<A, T> out{rl.data(), gs.data(), b.C, gw.data(), b.C, A(1)};
  Result r;
  r.loss = double(cpu::uskd(p, x, l, red, out));
  r.row_loss.assign(rl.begin(), rl.end());
  r.grad = back(gs);
  r.grad2 = back(gw);
  return r;
}


const int64_t kSizes[] = {2, 3, 10, 1000, 50000};
const double kTemps[] = {0.5, 1.0, 4.0, 16.0};

int64_t rows_for(int64_t C) { return C >= 50000 ? 3 : C >= 1000 ? 6 : 9; }

// float tolerance for a quantity built from logits of magnitude `mag` seen at temperature
// tau: a float rounding of x/τ costs ~6e-8·mag/τ absolute inside every exp and lse.
double float_atol(double mag, double tau) { return 1e-6 + 4e-7 * (1.0 + mag / std::min(tau, 1.0)); }

// The loss itself is conditioned like (teacher log-prob error ~6e-8·mag/τ) × (student log-prob
// ~mag/τ): at ±1e4 logits a float loss is good to ~1e-4 relative whatever the implementation
// (a 1e-3 error in lse(t) at 1e4 moves p_t,y by 1e-3, times −log p_s,y ~ 1e4).
double float_loss_atol(double mag, double tau) {
  const double q = mag / std::min(tau, 1.0);
  return 1.2e-7 * (1.0 + q) * (1.0 + q);
}

// ---------------------------------------------------------------------------------------------
// NKD

TEST(NKD, DoubleMatchesNaive) {
  for (int64_t C : kSizes)
    for (double tau : kTemps)
      for (bool extreme : {false, true}) {
        Batch b = make_batch(rows_for(C), C, 3.0, unsigned(C * 31 + tau * 7 + extreme), LabelMode::Cycle, extreme);
        NKDParams p{tau, 1.5};
        Result got = exec_nkd<double>(b, p, Reduction::BatchMean), want = naive_nkd(b, tau, 1.5, Reduction::BatchMean);
        const double mag = extreme ? 1e4 : 20.0;
        SCOPED_TRACE(testing::Message() << "C=" << C << " tau=" << tau << " extreme=" << extreme);
        expect_close(got.row_loss, want.row_loss, 1e-12 * (1 + mag * tau), 1e-10, "row_loss");
        expect_close(got.grad, want.grad, 1e-13 * (1 + mag), 1e-9, "grad");
        EXPECT_NEAR(got.loss, want.loss, 1e-10 * (1 + std::fabs(want.loss)));
      }
}

TEST(NKD, FloatMatchesNaive) {
  for (int64_t C : kSizes)
    for (double tau : kTemps)
      for (bool extreme : {false, true}) {
        Batch b = rounded<float>(make_batch(rows_for(C), C, 3.0, unsigned(C * 17 + tau * 3 + extreme), LabelMode::Cycle, extreme));
        Result got = exec_nkd<float>(b, NKDParams{tau, 1.5}, Reduction::Sum), want = naive_nkd(b, tau, 1.5, Reduction::Sum);
        const double mag = extreme ? 1e4 : 20.0;
        SCOPED_TRACE(testing::Message() << "C=" << C << " tau=" << tau << " extreme=" << extreme);
        expect_close(got.row_loss, want.row_loss, 1.5 * tau * tau * float_atol(mag, tau) + float_loss_atol(mag, tau), 1e-5,
                     "row_loss");
        expect_close(got.grad, want.grad, 1.5 * std::max(tau, 1.0) * float_atol(mag, tau), 1e-4, "grad");
      }
}

TEST(NKD, HalfInputs) {
  Batch b = rounded<half_t>(make_batch(5, 37, 3.0, 5, LabelMode::Cycle));
  Result got = exec_nkd<half_t>(b, NKDParams{}, Reduction::BatchMean), want = naive_nkd(b, 1.0, 1.5, Reduction::BatchMean);
  EXPECT_NEAR(got.loss, want.loss, 1e-5 * (1 + std::fabs(want.loss)));
  expect_close(got.grad, want.grad, 1e-4, 2e-3, "grad (fp16 output)");
}

TEST(NKD, FiniteDifferences) {
  for (double tau : kTemps)
    for (LabelMode mode : {LabelMode::Random, LabelMode::TeacherTop, LabelMode::TeacherLowest}) {
      Batch b = make_batch(1, 13, 2.0, unsigned(tau * 10 + int(mode)), mode);
      NKDParams p{tau, 1.5};
      Result r = exec_nkd<double>(b, p, Reduction::Sum);
      for (int64_t j = 0; j < b.C; ++j) {
        const double h = 1e-5;
        Batch bp = b, bm = b;
        bp.s[size_t(j)] += h;
        bm.s[size_t(j)] -= h;
        const double fd = (exec_nkd<double>(bp, p, Reduction::Sum).loss - exec_nkd<double>(bm, p, Reduction::Sum).loss) / (2 * h);
        EXPECT_NEAR(r.grad[size_t(j)], fd, 1e-7 * (1 + tau * tau)) << "tau=" << tau << " j=" << j;
      }
    }
}

TEST(NKD, IgnoredRowsAndReductions) {
  Batch b = make_batch(6, 11, 2.0, 3, LabelMode::Random);
  b.y[1] = -100;
  b.y[4] = -100;
  Result none = exec_nkd<double>(b, NKDParams{}, Reduction::None);
  Result mean = exec_nkd<double>(b, NKDParams{}, Reduction::BatchMean);
  Result want = naive_nkd(b, 1.0, 1.5, Reduction::BatchMean);
  EXPECT_EQ(none.row_loss[1], 0.0);
  for (int64_t j = 0; j < b.C; ++j) EXPECT_EQ(mean.grad[size_t(4 * b.C + j)], 0.0);
  EXPECT_NEAR(mean.loss, want.loss, 1e-12);
  expect_close(mean.grad, want.grad, 1e-14, 1e-10, "grad");
  EXPECT_THROW(exec_nkd<double>(make_batch(2, 1, 1.0, 1, LabelMode::Random), NKDParams{}, Reduction::Sum), Error);
  Batch bad = b;
  bad.y[0] = 11;
  EXPECT_THROW(exec_nkd<double>(bad, NKDParams{}, Reduction::Sum), Error);
  EXPECT_THROW(exec_nkd<double>(b, NKDParams{0.0, 1.5}, Reduction::Sum), Error);
}

// ---------------------------------------------------------------------------------------------
// RLD

TEST(RLD, DoubleMatchesNaive) {
  for (bool stand : {false, true})
    for (int64_t C : kSizes)
      for (double tau : kTemps)
        for (bool extreme : {false, true}) {
          Batch b = make_batch(rows_for(C), C, 3.0, unsigned(C * 13 + tau * 5 + extreme + 100 * stand), LabelMode::Cycle, extreme);
          RLDParams p{1.0, 8.0, tau, tau >= 4 ? 2.0 : 1.0, stand};
          Result got = exec_rld<double>(b, p, Reduction::BatchMean), want = naive_rld(b, p, Reduction::BatchMean);
          const double mag = (extreme && !stand) ? 1e4 : 20.0;
          SCOPED_TRACE(testing::Message() << "C=" << C << " tau=" << tau << " extreme=" << extreme << " stand=" << stand);
          expect_close(got.row_loss, want.row_loss, 1e-11 * (1 + mag * tau), 1e-9, "row_loss");
          expect_close(got.grad, want.grad, 1e-12 * (1 + mag), 1e-8, "grad");
          EXPECT_NEAR(got.loss, want.loss, 1e-9 * (1 + std::fabs(want.loss)));
        }
}

TEST(RLD, FloatMatchesNaive) {
  for (bool stand : {false, true})
    for (int64_t C : kSizes)
      for (double tau : kTemps)
        for (bool extreme : {false, true}) {
          Batch b = rounded<float>(make_batch(rows_for(C), C, 3.0, unsigned(C * 7 + tau * 11 + extreme + 50 * stand), LabelMode::Cycle, extreme));
          RLDParams p{1.0, 8.0, tau, 1.0, stand};
          Result got = exec_rld<float>(b, p, Reduction::Sum), want = naive_rld(b, p, Reduction::Sum);
          // Standardized rows are O(√C) at most; with C classes the std of a ±1e4 row is ~6e3.
          const double mag = stand ? 10.0 + std::sqrt(double(C)) : extreme ? 1e4 : 20.0;
          const double tmin = std::min(tau, 1.0);
          SCOPED_TRACE(testing::Message() << "C=" << C << " tau=" << tau << " extreme=" << extreme << " stand=" << stand);
          expect_close(got.row_loss, want.row_loss, 9.0 * tau * tau * float_atol(mag, tmin), 1e-5, "row_loss");
          const double gscale = stand ? 1.0 / (1e-7 + 1.0) : 1.0;  // σ ≥ ~1 for these rows
          expect_close(got.grad, want.grad, gscale * 9.0 * std::max(tau, 1.0) * float_atol(mag, tmin), 1e-4, "grad");
        }
}

TEST(RLD, FiniteDifferences) {
  for (bool stand : {false, true})
    for (double tau : kTemps)
      for (LabelMode mode : {LabelMode::Random, LabelMode::TeacherTop, LabelMode::TeacherLowest}) {
        Batch b = make_batch(1, 11, 2.0, unsigned(tau * 10 + int(mode) + 7 * stand), mode);
        RLDParams p{1.0, 8.0, tau, 2.0, stand};
        Result r = exec_rld<double>(b, p, Reduction::Sum);
        for (int64_t j = 0; j < b.C; ++j) {
          const double h = 1e-5;
          Batch bp = b, bm = b;
          bp.s[size_t(j)] += h;
          bm.s[size_t(j)] -= h;
          const double fd = (exec_rld<double>(bp, p, Reduction::Sum).loss - exec_rld<double>(bm, p, Reduction::Sum).loss) / (2 * h);
          EXPECT_NEAR(r.grad[size_t(j)], fd, 2e-7 * (1 + tau * tau)) << "tau=" << tau << " j=" << j << " stand=" << stand;
          // and the naive loss agrees with the same finite difference
          const double fdn = (naive_rld(bp, p, Reduction::Sum).loss - naive_rld(bm, p, Reduction::Sum).loss) / (2 * h);
          EXPECT_NEAR(fdn, fd, 2e-7 * (1 + tau * tau));
        }
      }
}

TEST(RLD, EmptyMaskGivesZeroMCD) {
  // label = the teacher's lowest class: K is empty, only SCD remains.
  Batch b = make_batch(4, 9, 2.0, 21, LabelMode::TeacherLowest);
  RLDParams p;
  p.alpha = 0.0;  // SCD off: the loss is β·MCD = 0
  Result r = exec_rld<double>(b, p, Reduction::None);
  for (double v : r.row_loss) EXPECT_EQ(v, 0.0);
  for (double g : r.grad) EXPECT_EQ(g, 0.0);
  // Teacher's top class is the label, everything but y is in K.
  Batch top = make_batch(4, 9, 2.0, 22, LabelMode::TeacherTop);
  expect_close(exec_rld<double>(top, RLDParams{}, Reduction::None).row_loss,
               naive_rld(top, RLDParams{}, Reduction::None).row_loss, 1e-13, 1e-11, "row_loss");
}

TEST(RLD, TeacherArgmaxTiesGoToFirstIndex) {
  Batch b = make_batch(1, 6, 1.0, 9, LabelMode::Random);
  b.t = {0.5, 2.0, -1.0, 2.0, 0.0, 2.0};
  b.y = {4};
  for (bool stand : {false, true}) {
    RLDParams p{1.0, 8.0, 4.0, 1.0, stand};
    expect_close(exec_rld<double>(b, p, Reduction::Sum).grad, naive_rld(b, p, Reduction::Sum).grad, 1e-14, 1e-11, "grad");
  }
}

TEST(RLD, ConstantStudentRowIsFinite) {
  Batch b = make_batch(2, 8, 1.0, 4, LabelMode::Random);
  for (int64_t j = 0; j < b.C; ++j) b.s[size_t(j)] = 0.25;
  Result r = exec_rld<double>(b, RLDParams{1.0, 8.0, 4.0, 1.0, true}, Reduction::Sum);
  for (double g : r.grad) EXPECT_TRUE(std::isfinite(g));
}

// ---------------------------------------------------------------------------------------------
// USKD

TEST(USKD, DoubleMatchesNaive) {
  for (int64_t C : kSizes)
    for (bool extreme : {false, true}) {
      Batch b = make_batch(rows_for(C), C, 3.0, unsigned(C * 3 + extreme), LabelMode::Random, extreme);
      if (b.N > 3) b.y[2] = -100;
      USKDParams p;
      Result got = exec_uskd<double>(b, p, Reduction::BatchMean), want = naive_uskd(b, 1.0, 0.1, 0.005, Reduction::BatchMean);
      const double mag = extreme ? 1e4 : 20.0;
      SCOPED_TRACE(testing::Message() << "C=" << C << " extreme=" << extreme);
      expect_close(got.row_loss, want.row_loss, 1e-12 * (1 + mag), 1e-10, "row_loss");
      expect_close(got.grad, want.grad, 1e-13 * (1 + mag), 1e-9, "grad_student");
      expect_close(got.grad2, want.grad2, 1e-15 * (1 + mag), 1e-9, "grad_weak");
    }
}

TEST(USKD, FloatMatchesNaive) {
  for (int64_t C : kSizes)
    for (bool extreme : {false, true}) {
      Batch b = rounded<float>(make_batch(rows_for(C), C, 3.0, unsigned(C * 5 + extreme), LabelMode::Random, extreme));
      USKDParams p{1.0, 0.1, 0.005};
      Result got = exec_uskd<float>(b, p, Reduction::Sum), want = naive_uskd(b, 1.0, 0.1, 0.005, Reduction::Sum);
      const double mag = extreme ? 1e4 : 20.0;
      SCOPED_TRACE(testing::Message() << "C=" << C << " extreme=" << extreme);
      // Near-tied scores may swap places in float; a swap at rank k moves z by ~1/(k² Z).
      expect_close(got.row_loss, want.row_loss, 4.0 * float_atol(mag, 1.0), 1e-5, "row_loss");
      expect_close(got.grad, want.grad, 2e-6 + 0.1 * float_atol(mag, 1.0), 1e-4, "grad_student");
      expect_close(got.grad2, want.grad2, 0.005 * float_atol(mag, 1.0), 1e-4, "grad_weak");
    }
}

TEST(USKD, FiniteDifferences) {
  Batch b = make_batch(3, 12, 2.0, 77, LabelMode::Random);
  USKDParams p{1.0, 0.7, 0.3};  // larger β, μ so every term shows
  vector<double> soft;
  Result r = exec_uskd<double>(b, p, Reduction::Sum);
  Result n = naive_uskd(b, p.alpha, p.beta, p.mu, Reduction::Sum, nullptr, &soft);
  expect_close(r.grad, n.grad, 1e-14, 1e-10, "grad_student");
  const double h = 1e-6;
  for (size_t k = 0; k < b.s.size(); ++k) {
    for (int which = 0; which < 2; ++which) {
      Batch bp = b, bm = b;
      (which ? bp.t : bp.s)[k] += h;
      (which ? bm.t : bm.s)[k] -= h;
      // soft is a constant of the loss: hold it fixed
      const double fd = (naive_uskd(bp, p.alpha, p.beta, p.mu, Reduction::Sum, &soft).loss -
                         naive_uskd(bm, p.alpha, p.beta, p.mu, Reduction::Sum, &soft).loss) /
                        (2 * h);
      EXPECT_NEAR((which ? r.grad2 : r.grad)[k], fd, 1e-7) << (which ? "w" : "s") << " k=" << k;
    }
  }
}

TEST(USKD, TiesBreakToLowerIndexDeterministically) {
  // Constant weak logits and equal non-target student logits: every non-target class has the
  // same score, so the Zipf weights follow the class index: z ∝ 1/(1 + position among j ≠ y),
  // with y ranked first (its score is the largest).
  const int64_t C = 7;
  Batch b;
  b.N = 2;
  b.C = C;
  b.s.assign(size_t(2 * C), 0.0);
  b.t.assign(size_t(2 * C), 0.3);
  b.y = {3, 0};
  b.s[3] = 2.0;
  b.s[size_t(C + 0)] = 2.0;
  USKDParams p{0.0, 1.0, 0.0};  // only the non-target term
  Result r1 = exec_uskd<double>(b, p, Reduction::Sum);
  Result r2 = exec_uskd<double>(b, p, Reduction::Sum);
  Result rf = exec_uskd<float>(b, p, Reduction::Sum);
  EXPECT_EQ(r1.grad, r2.grad);
  Result want = naive_uskd(b, 0.0, 1.0, 0.0, Reduction::Sum);  // stable sort = lower index first
  expect_close(r1.grad, want.grad, 1e-15, 1e-12, "grad");
  expect_close(rf.grad, want.grad, 1e-7, 1e-5, "grad float");
  // Explicit: row 0 (y = 3): ranks 0:y, then classes 0,1,2,4,5,6 get 1/2..1/7.
  double H = 0;
  for (int k = 2; k <= 7; ++k) H += 1.0 / k;
  const int64_t cls[] = {0, 1, 2, 4, 5, 6};
  for (int k = 0; k < 6; ++k) {
    const double q = 1.0 / 6.0, z = (1.0 / (k + 2)) / H;
    EXPECT_NEAR(r1.grad[size_t(cls[k])], q - z, 1e-14) << "class " << cls[k];
  }
}

TEST(USKD, BatchMeanOverCountedRowsOnly) {
  Batch b = make_batch(5, 9, 2.0, 8, LabelMode::Random);
  Batch b_counted = b;
  b.y[1] = -100;
  // Removing the ignored row entirely must give the same loss and gradients on the others.
  Batch small = b_counted;
  small.N = 4;
  small.s.erase(small.s.begin() + 9, small.s.begin() + 18);
  small.t.erase(small.t.begin() + 9, small.t.begin() + 18);
  small.y.erase(small.y.begin() + 1);
  Result r = exec_uskd<double>(b, USKDParams{}, Reduction::BatchMean);
  Result s = exec_uskd<double>(small, USKDParams{}, Reduction::BatchMean);
  EXPECT_NEAR(r.loss, s.loss, 1e-13);
  for (int64_t j = 0; j < 9; ++j) {
    EXPECT_EQ(r.grad[size_t(9 + j)], 0.0);
    EXPECT_EQ(r.grad2[size_t(9 + j)], 0.0);
    EXPECT_NEAR(r.grad[size_t(j)], s.grad[size_t(j)], 1e-15);
  }
}

}  // namespace
