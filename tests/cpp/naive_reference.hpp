// Naive float64 implementations of KD and DKD for the tests: materialize every softmax, then
// apply the spec's formulas literally. Shares no code with the library.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace naive {

inline std::vector<double> log_softmax(const std::vector<double>& x, double tau, long long skip = -1) {
  double m = -INFINITY;
  for (size_t j = 0; j < x.size(); ++j)
    if ((long long)j != skip) m = std::max(m, x[j] / tau);
  double z = 0;
  for (size_t j = 0; j < x.size(); ++j)
    if ((long long)j != skip) z += std::exp(x[j] / tau - m);
  std::vector<double> out(x.size());
  for (size_t j = 0; j < x.size(); ++j) out[j] = (long long)j == skip ? -INFINITY : x[j] / tau - m - std::log(z);
  return out;
}

inline double xlogy_kl(double log_p, double log_q) { return std::isinf(log_p) ? 0.0 : std::exp(log_p) * (log_p - log_q); }

inline double kd(const std::vector<double>& s, const std::vector<double>& t, double tau) {
  auto ls = log_softmax(s, tau), lt = log_softmax(t, tau);
  double l = 0;
  for (size_t j = 0; j < s.size(); ++j) l += xlogy_kl(lt[j], ls[j]);
  return tau * tau * l;
}

inline double dkd(const std::vector<double>& s, const std::vector<double>& t, long long y, double alpha, double beta,
                  double tau) {
  auto ls = log_softmax(s, tau), lt = log_softmax(t, tau);
  double ps_nt = 0, pt_nt = 0;
  for (size_t j = 0; j < s.size(); ++j)
    if ((long long)j != y) ps_nt += std::exp(ls[j]), pt_nt += std::exp(lt[j]);
  const double tckd = xlogy_kl(lt[y], ls[y]) + xlogy_kl(std::log(pt_nt), std::log(ps_nt));
  auto qs = log_softmax(s, tau, y), qt = log_softmax(t, tau, y);
  double nckd = 0;
  for (size_t j = 0; j < s.size(); ++j)
    if ((long long)j != y) nckd += xlogy_kl(qt[j], qs[j]);
  return tau * tau * (alpha * tckd + beta * nckd);
}

}  // namespace naive
