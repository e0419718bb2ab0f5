// cpu::rank_row (USKD's ranking): the packed 64-bit key sort for fp32 scores gives exactly the
// order of uskd_rank_before (descending score, ties to the lower index), with ties, ±0, ±inf and
// subnormals; fp64 scores take the comparator path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include <fusedkd/fusedkd.hpp>

using namespace fusedkd;
using std::int64_t;
using std::vector;

namespace {

template <class A> vector<int64_t> comparator_order(const vector<A>& v) {
  vector<int64_t> order(v.size());
  std::iota(order.begin(), order.end(), int64_t(0));
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return uskd_rank_before(v[a], a, v[b], b); });
  return order;
}

template <class A> vector<A> scores(int64_t C, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick(0, 9);
  std::normal_distribution<double> normal(0.0, 5.0);
  const A specials[] = {A(0), -A(0), A(1), A(-1), std::numeric_limits<A>::infinity(),
                        -std::numeric_limits<A>::infinity(), std::numeric_limits<A>::denorm_min(),
                        -std::numeric_limits<A>::denorm_min()};
  vector<A> v(static_cast<size_t>(C));
  for (auto& x : v) x = pick(rng) < 3 ? specials[rng() % 8] : A(normal(rng));  // many ties
  return v;
}

TEST(USKDRank, Float32KeysMatchTheComparator) {
  for (int64_t C : {2L, 3L, 17L, 1000L, 21843L}) {
    const vector<float> v = scores<float>(C, unsigned(C));
    vector<std::uint64_t> keys;
    vector<int64_t> order(static_cast<size_t>(C));
    cpu::rank_row(C, [&](int64_t j) { return v[size_t(j)]; }, keys, order);
    EXPECT_EQ(order, comparator_order(v)) << "C " << C;
  }
}

TEST(USKDRank, Float64UsesTheComparator) {
  const int64_t C = 999;
  const vector<double> v = scores<double>(C, 5);
  vector<std::uint64_t> keys;
  vector<int64_t> order(static_cast<size_t>(C));
  cpu::rank_row(C, [&](int64_t j) { return v[size_t(j)]; }, keys, order);
  EXPECT_EQ(order, comparator_order(v));
}

}  // namespace
