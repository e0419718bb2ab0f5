// cpu::rank_row (USKD's ranking) and the radix sort under it (cpu/radix_sort.hpp): for fp32
// scores the radix sort of (descending key, class) items gives exactly the order of
// uskd_rank_before (descending score, ties to the lower index), with ties, ±0, ±inf and
// subnormals, on both sides of the std::sort threshold; fp64 scores take the comparator path.
// radix_sorted_positions itself: a stable sort by key, with all-equal keys and keys whose digits
// are constant (skipped passes).
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
using std::uint32_t;
using std::uint64_t;
using std::vector;

namespace {

const int64_t kMinRadix = cpu::kRadixSortMinItems;

// Sizes below, at and above the std::sort threshold, and rows of vision and vocabulary width.
const int64_t kSizes[] = {2, 3, 17, kMinRadix - 1, kMinRadix, kMinRadix + 1, 1000, 21843, 65537};

template <class A> vector<int64_t> comparator_order(const vector<A>& v) {
  vector<int64_t> order(v.size());
  std::iota(order.begin(), order.end(), int64_t(0));
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return uskd_rank_before(v[a], a, v[b], b); });
  return order;
}

// Normal scores with 30% drawn from special values (many ties, ±0, ±inf, ±subnormals).
template <class A> vector<A> scores(int64_t C, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> pick(0, 9);
  std::normal_distribution<double> normal(0.0, 5.0);
  const A specials[] = {A(0),
                        -A(0),
                        A(1),
                        A(-1),
                        std::numeric_limits<A>::infinity(),
                        -std::numeric_limits<A>::infinity(),
                        std::numeric_limits<A>::denorm_min(),
                        -std::numeric_limits<A>::denorm_min(),
                        std::numeric_limits<A>::min() / A(3),  // a subnormal above denorm_min
                        -std::numeric_limits<A>::min() / A(3)};
  const int n_specials = int(sizeof specials / sizeof specials[0]);
  vector<A> v(static_cast<size_t>(C));
  for (auto& x : v) x = pick(rng) < 3 ? specials[rng() % n_specials] : A(normal(rng));
  return v;
}

// rank_row's visits as order[k] = j, checking that every rank and class is visited once.
template <class A> vector<int64_t> ranked(const vector<A>& v, cpu::RankScratch& scratch) {
  const int64_t C = int64_t(v.size());
  vector<int64_t> order(v.size(), -1);
  vector<int> seen(v.size(), 0);
  cpu::rank_row(C, [&](int64_t j) { return v[size_t(j)]; }, scratch, [&](int64_t k, int64_t j) {
    EXPECT_TRUE(k >= 0 && k < C && j >= 0 && j < C) << "k " << k << " j " << j;
    if (k < 0 || k >= C || j < 0 || j >= C) return;
    order[size_t(k)] = j;
    ++seen[size_t(j)];
  });
  for (int64_t j = 0; j < C; ++j) EXPECT_EQ(seen[size_t(j)], 1) << "class " << j;
  return order;
}

TEST(USKDRank, Float32MatchesTheComparator) {
  cpu::RankScratch scratch;  // reused across sizes, as across the rows of a call
  for (int64_t C : kSizes) {
    const vector<float> v = scores<float>(C, unsigned(C));
    EXPECT_EQ(ranked(v, scratch), comparator_order(v)) << "C " << C;
  }
}

TEST(USKDRank, Float32ShrinkingRowsReuseTheScratch) {
  cpu::RankScratch scratch;
  for (int64_t C : {65537L, 1000L, 129L, 3L}) {
    const vector<float> v = scores<float>(C, unsigned(C + 1));
    EXPECT_EQ(ranked(v, scratch), comparator_order(v)) << "C " << C;
  }
}

TEST(USKDRank, Float32AllEqualScoresKeepTheIndexOrder) {
  cpu::RankScratch scratch;
  for (int64_t C : {2L, kMinRadix - 1, kMinRadix, 1000L})
    for (float value : {0.0f, -3.5f, std::numeric_limits<float>::infinity()}) {
      const vector<float> v(size_t(C), value);
      vector<int64_t> identity(static_cast<size_t>(C));
      std::iota(identity.begin(), identity.end(), int64_t(0));
      EXPECT_EQ(ranked(v, scratch), identity) << "C " << C << " value " << value;
    }
}

TEST(USKDRank, Float32SignedZerosTie) {
  cpu::RankScratch scratch;
  for (int64_t C : {6L, 1000L}) {
    vector<float> v(size_t(C), -1.0f);
    for (int64_t j = 0; j < C; j += 2) v[size_t(j)] = (j / 2) % 2 ? 0.0f : -0.0f;
    const vector<int64_t> order = ranked(v, scratch);
    EXPECT_EQ(order, comparator_order(v)) << "C " << C;
    for (int64_t k = 0; k < (C + 1) / 2; ++k) EXPECT_EQ(order[size_t(k)], 2 * k) << "C " << C;  // ±0 first, by index
  }
}

TEST(USKDRank, Float32FewDistinctScores) {
  // Heavy ties: scores from a handful of values, so most keys share all four digits.
  cpu::RankScratch scratch;
  std::mt19937 rng(11);
  for (int64_t C : {kMinRadix, 1000L, 65537L}) {
    vector<float> v(static_cast<size_t>(C));
    for (auto& x : v) x = float(int(rng() % 5)) - 2.0f;
    EXPECT_EQ(ranked(v, scratch), comparator_order(v)) << "C " << C;
  }
}

TEST(USKDRank, Float64UsesTheComparator) {
  cpu::RankScratch scratch;
  for (int64_t C : {2L, 999L}) {
    const vector<double> v = scores<double>(C, 5);
    EXPECT_EQ(ranked(v, scratch), comparator_order(v)) << "C " << C;
  }
}

// ---------------------------------------------------------------------------------------------
// radix_sorted_positions

// The positions of a stable ascending sort by key: want[k] = the input index at position k.
vector<int64_t> stable_positions(const vector<uint32_t>& keys) {
  vector<int64_t> idx(keys.size());
  std::iota(idx.begin(), idx.end(), int64_t(0));
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return keys[size_t(a)] < keys[size_t(b)]; });
  return idx;
}

// Sorts items (key, payload) and returns the payloads by position.
vector<uint32_t> sorted_payloads(const vector<uint32_t>& keys, const vector<uint32_t>& payloads) {
  const int64_t n = int64_t(keys.size());
  vector<uint64_t> items(keys.size()), spare(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) items[i] = cpu::radix_item(keys[i], payloads[i]);
  vector<uint32_t> out(keys.size(), 0);
  vector<int> hits(keys.size(), 0);
  cpu::radix_sorted_positions(items.data(), spare.data(), n, [&](int64_t k, uint64_t item) {
    EXPECT_TRUE(k >= 0 && k < n) << k;
    if (k < 0 || k >= n) return;
    out[size_t(k)] = cpu::radix_payload(item);
    ++hits[size_t(k)];
  });
  for (int64_t k = 0; k < n; ++k) EXPECT_EQ(hits[size_t(k)], 1) << "position " << k;
  return out;
}

void expect_stable_sort(const vector<uint32_t>& keys, const char* what) {
  vector<uint32_t> payloads(keys.size());
  std::iota(payloads.begin(), payloads.end(), 0u);
  const vector<int64_t> want = stable_positions(keys);
  const vector<uint32_t> got = sorted_payloads(keys, payloads);
  for (size_t k = 0; k < keys.size(); ++k)
    ASSERT_EQ(int64_t(got[k]), want[k]) << what << ": n " << keys.size() << " position " << k;
}

TEST(RadixSort, StableByKey) {
  std::mt19937 rng(3);
  for (int64_t n : kSizes) {
    vector<uint32_t> keys(static_cast<size_t>(n));
    for (auto& k : keys) k = uint32_t(rng());
    expect_stable_sort(keys, "random keys");
    for (auto& k : keys) k = uint32_t(rng() % 7);  // ties
    expect_stable_sort(keys, "seven keys");
  }
}

TEST(RadixSort, ConstantDigitsAreSkipped) {
  // Keys whose high, middle or low bytes are the same for every item: the passes on those digits
  // are skipped (an odd or even number of scatter passes, so the result ends in either buffer).
  const uint32_t masks[] = {0x000000ffu, 0x0000ffffu, 0x00ffffffu, 0xff000000u,
                            0xffff0000u, 0x00ff00ffu, 0xff00ff00u, 0x0ff00000u};
  std::mt19937 rng(4);
  for (int64_t n : {kMinRadix, kMinRadix + 1, int64_t(1000), int64_t(65537)})
    for (uint32_t mask : masks) {
      vector<uint32_t> keys(static_cast<size_t>(n));
      for (auto& k : keys) k = (uint32_t(rng()) & mask) | (0x5a5a5a5au & ~mask);
      expect_stable_sort(keys, "masked keys");
    }
}

TEST(RadixSort, AllEqualKeysKeepTheInputOrder) {
  for (int64_t n : {int64_t(1), int64_t(2), kMinRadix - 1, kMinRadix, int64_t(5000)}) {
    expect_stable_sort(vector<uint32_t>(size_t(n), 0u), "zero keys");
    expect_stable_sort(vector<uint32_t>(size_t(n), 0xdeadbeefu), "equal keys");
  }
}

TEST(RadixSort, RadixPathIsStableForAnyPayload) {
  // At or above the threshold the payload is only carried: equal keys keep the input order even
  // when the payloads decrease along it.
  std::mt19937 rng(5);
  for (int64_t n : {kMinRadix, int64_t(3000)}) {
    vector<uint32_t> keys(static_cast<size_t>(n)), payloads(static_cast<size_t>(n));
    for (auto& k : keys) k = uint32_t(rng() % 13) << 20;
    for (int64_t i = 0; i < n; ++i) payloads[size_t(i)] = uint32_t(n - 1 - i);
    const vector<int64_t> want = stable_positions(keys);
    const vector<uint32_t> got = sorted_payloads(keys, payloads);
    for (int64_t k = 0; k < n; ++k) ASSERT_EQ(got[size_t(k)], payloads[size_t(want[size_t(k)])]) << "position " << k;
  }
}

}  // namespace
