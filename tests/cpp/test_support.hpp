// Helpers shared by the C++ tests: test data as a tensor of type T stores it, the labels the
// SIMD tests cycle through, and an elementwise closeness check.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <fusedkd/numeric.hpp>

namespace test_support {

// Values as a T tensor stores them (rounded through acc_t<T>), and read back exactly.
template <class T> std::vector<T> cast(const std::vector<double>& v) {
  std::vector<T> r(v.size());
  for (size_t k = 0; k < v.size(); ++k) r[k] = fusedkd::from_acc<T>(fusedkd::acc_t<T>(v[k]));
  return r;
}
template <class T> std::vector<double> back(const std::vector<T>& v) {
  std::vector<double> r(v.size());
  for (size_t k = 0; k < v.size(); ++k) r[k] = double(fusedkd::to_acc(v[k]));
  return r;
}

// Labels cycling through 0, C − 1, a column in the remainder of C mod 8 (the SIMD paths' tail),
// and a random column (drawn from rng only for those rows).
inline std::vector<std::int64_t> cycling_labels(std::int64_t N, std::int64_t C, std::mt19937& rng) {
  std::vector<std::int64_t> y(static_cast<size_t>(N));
  for (std::int64_t i = 0; i < N; ++i) {
    const std::int64_t k = i % 4;
    y[size_t(i)] = k == 0 ? 0 : k == 1 ? C - 1 : k == 2 ? C - 1 - (C % 8) / 2 : std::int64_t(rng() % std::uint64_t(C));
  }
  return y;
}

// |a − b| ≤ atol + rtol·|b| elementwise (and a finite), reporting the worst element.
inline void expect_close(const std::vector<double>& a, const std::vector<double>& b, double atol, double rtol,
                         const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  size_t worst = 0;
  double worst_excess = -1;
  for (size_t k = 0; k < a.size(); ++k) {
    ASSERT_TRUE(std::isfinite(a[k])) << what << " not finite at " << k;
    const double excess = std::fabs(a[k] - b[k]) - (atol + rtol * std::fabs(b[k]));
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = k;
    }
  }
  EXPECT_LE(worst_excess, 0.0) << what << " at " << worst << ": got " << a[worst] << ", want " << b[worst]
                               << " (atol " << atol << ", rtol " << rtol << ")";
}

}  // namespace test_support
