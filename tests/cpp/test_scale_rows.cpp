// cpu::scale_rows (scale_rows.hpp): g[i, :] ← f_i · g[i, :] in the accumulation type, rounded
// once to the gradient's type; rows whose factor is exactly 1, and the padding between rows, are
// left bit for bit as they were. Every element type.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <fusedkd/fusedkd.hpp>

#include "test_support.hpp"

using namespace fusedkd;
using std::int64_t;
using test_support::back;
using test_support::cast;

namespace {

template <class T> class ScaleRows : public ::testing::Test {};
using ElementTypes = ::testing::Types<float, double, half_t, bfloat16_t>;
TYPED_TEST_SUITE(ScaleRows, ElementTypes);

TYPED_TEST(ScaleRows, ScalesEachRowByItsFactorAndSkipsUnitRows) {
  using T = TypeParam;
  using A = acc_t<T>;
  const int64_t N = 6, C = 37, stride = 41;  // 4 padding elements per row
  std::mt19937 rng(3);
  std::normal_distribution<double> normal(0.0, 3.0);
  std::vector<double> g0(size_t(N * stride));
  for (double& v : g0) v = normal(rng);
  g0[size_t(3 * stride + 1)] = std::nan("");  // row 3: its per-row factor is 1, so it stays
  const std::vector<A> per_row = {A(1), A(2.5), A(-1) / A(3), A(1), A(0), A(65536)};

  for (int64_t factor_stride : {int64_t(0), int64_t(1)}) {
    std::vector<T> g = cast<T>(g0);
    const std::vector<T> before = g;
    const RowFactors<A> f{factor_stride == 0 ? per_row.data() + 2 : per_row.data(), factor_stride};
    cpu::scale_rows(g.data(), stride, C, f, 0, N);
    for (int64_t i = 0; i < N; ++i) {
      const A fi = f(i);
      for (int64_t j = 0; j < stride; ++j) {
        const size_t k = size_t(i * stride + j);
        if (j >= C || fi == A(1)) {
          EXPECT_EQ(0, std::memcmp(&g[k], &before[k], sizeof(T))) << "row " << i << " col " << j << " rewritten";
        } else {
          const T want = from_acc<T>(A(to_acc(before[k])) * fi);
          EXPECT_EQ(0, std::memcmp(&g[k], &want, sizeof(T)))
              << "row " << i << " col " << j << ": got " << back<T>({g[k]})[0] << ", want " << back<T>({want})[0];
        }
      }
    }
  }
}

TYPED_TEST(ScaleRows, RowRangeOnly) {
  using T = TypeParam;
  using A = acc_t<T>;
  const int64_t N = 4, C = 5;
  std::vector<T> g = cast<T>(std::vector<double>(size_t(N * C), 1.5));
  const A two = A(2);
  cpu::scale_rows(g.data(), C, C, RowFactors<A>{&two, 0}, 1, 3);
  const std::vector<double> got = back(g);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < C; ++j) EXPECT_EQ(got[size_t(i * C + j)], (i == 1 || i == 2) ? 3.0 : 1.5) << i << "," << j;
}

// The SIMD rows (both widths, called directly) against the scalar rows, bit for bit, on values
// that stress the rounding: subnormals, values that overflow to inf once scaled, ±inf, NaN, ±0,
// and random ones; C = 1 to 40 (full blocks and scalar tails).
template <int W, class T> void expect_lanes_match_scalar() {
  std::mt19937 rng(11);
  std::normal_distribution<double> normal(0.0, 3.0);
  const double special[] = {0.0, -0.0, 1e-40, -3e-39, 6e-8, 65504.0, 3e38, -3e38, INFINITY, -INFINITY, NAN, 1.0};
  const std::vector<float> factors = {2.5f, -1.0f / 3, 65536.0f, 1e-30f, 1.0f, 0.0f};
  for (int64_t C = 1; C <= 40; ++C) {
    const int64_t N = int64_t(factors.size());
    std::vector<double> v(size_t(N * C));
    for (size_t k = 0; k < v.size(); ++k) v[k] = k % 3 == 0 ? special[k / 3 % 12] : normal(rng);
    std::vector<T> lanes = cast<T>(v), scalar = lanes;
    const RowFactors<float> f{factors.data(), 1};
    cpu::detail::scale_rows_lanes<W>(lanes.data(), C, C, f, 0, N);
    cpu::detail::scale_rows_scalar(scalar.data(), C, C, f, 0, N);
    ASSERT_EQ(0, std::memcmp(lanes.data(), scalar.data(), lanes.size() * sizeof(T))) << "W " << W << " C " << C;
  }
}

TEST(ScaleRowsLanes, BitForBitTheScalarRows) {
  expect_lanes_match_scalar<4, float>();
  expect_lanes_match_scalar<8, float>();
  expect_lanes_match_scalar<4, half_t>();
  expect_lanes_match_scalar<8, half_t>();
  expect_lanes_match_scalar<4, bfloat16_t>();
  expect_lanes_match_scalar<8, bfloat16_t>();
}

}  // namespace
