// Sorted positions of packed items (key << 32 | payload) by ascending 32-bit key, ties in input
// order — a stable sort — for ranking (the payload is a column index).
//
// n ≥ kRadixSortMinItems: LSD radix sort on 8-bit digits of the key, least significant first.
// One pass over the items builds the four digit histograms; a digit that is the same for every
// item is skipped (no scatter); the other passes scatter the items stably between the two
// buffers, and the last one, instead of moving the items, hands each item its final position.
// Smaller n: std::sort on the whole 64-bit items, the same order when the payloads increase
// along the input (for a few dozen items a comparison sort beats the histogram work).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace fusedkd::cpu {

constexpr int kRadixKeyBits = 32;                               // the key: the item's high half
constexpr int kRadixDigitBits = 8;
constexpr int kRadixBuckets = 1 << kRadixDigitBits;             // 256 values of a digit
constexpr int kRadixPasses = kRadixKeyBits / kRadixDigitBits;   // 4 digits per key
constexpr std::uint64_t kRadixDigitMask = kRadixBuckets - 1;
// Below this many items std::sort is faster: the radix sort's fixed cost (clearing and summing its
// histograms) is ~0.5 µs; measured on rows of random fp32 score keys, the two cross at ~50 items.
constexpr std::int64_t kRadixSortMinItems = 64;

// The item of (key, payload), and its two halves.
inline std::uint64_t radix_item(std::uint32_t key, std::uint32_t payload) {
  return (std::uint64_t(key) << kRadixKeyBits) | payload;
}
inline std::uint32_t radix_key(std::uint64_t item) { return std::uint32_t(item >> kRadixKeyBits); }
inline std::uint32_t radix_payload(std::uint64_t item) { return std::uint32_t(item); }

// Digit p (0 = least significant) of an item's key.
inline std::uint32_t radix_digit(std::uint64_t item, int p) {
  return std::uint32_t((item >> (kRadixKeyBits + p * kRadixDigitBits)) & kRadixDigitMask);
}

namespace detail {
// ++count[p][digit p] for every digit of an item's key (unrolled).
template <int... P>
inline void count_digits(std::uint32_t (&count)[kRadixPasses][kRadixBuckets], std::uint64_t item,
                         std::integer_sequence<int, P...>) {
  ((++count[P][radix_digit(item, P)]), ...);
}
}  // namespace detail

// The two item buffers of a sort, kept across calls so rows of a batch allocate once.
struct RadixSortScratch {
  std::vector<std::uint64_t> items, spare;
  void resize(std::int64_t n) {
    items.resize(std::size_t(n));
    spare.resize(std::size_t(n));
  }
};

// Calls visit(k, item) once for each of items[0, n), k = its position in the stable ascending
// order by key (in no particular order of the calls). Payloads must increase along the input for
// n < kRadixSortMinItems (a comparison sort of the whole items); the radix path needs no such
// condition. spare holds n items of scratch; items is overwritten.
template <class Visit>
void radix_sorted_positions(std::uint64_t* items, std::uint64_t* spare, std::int64_t n, Visit&& visit) {
  if (n < kRadixSortMinItems) {
    std::sort(items, items + n);
    for (std::int64_t k = 0; k < n; ++k) visit(k, items[k]);
    return;
  }
  std::uint32_t count[kRadixPasses][kRadixBuckets];  // count[p][d] = #items whose digit p is d
  std::memset(count, 0, sizeof count);
  for (std::int64_t i = 0; i < n; ++i)
    detail::count_digits(count, items[i], std::make_integer_sequence<int, kRadixPasses>{});
  int passes[kRadixPasses];  // the digits that differ between items, least significant first
  int n_passes = 0;
  for (int p = 0; p < kRadixPasses; ++p)
    if (count[p][radix_digit(items[0], p)] != std::uint32_t(n)) passes[n_passes++] = p;
  if (n_passes == 0) {  // all keys equal: the input order
    for (std::int64_t k = 0; k < n; ++k) visit(k, items[k]);
    return;
  }
  std::uint64_t* from = items;
  std::uint64_t* to = spare;
  for (int q = 0; q < n_passes; ++q) {
    const int p = passes[q];
    std::uint32_t next[kRadixBuckets];  // next[d] = the position of the next item of digit d
    std::uint32_t start = 0;
    for (int d = 0; d < kRadixBuckets; ++d) {
      next[d] = start;
      start += count[p][d];
    }
    if (q + 1 == n_passes) {
      for (std::int64_t i = 0; i < n; ++i) visit(std::int64_t(next[radix_digit(from[i], p)]++), from[i]);
      return;
    }
    for (std::int64_t i = 0; i < n; ++i) to[next[radix_digit(from[i], p)]++] = from[i];
    std::swap(from, to);
  }
}

}  // namespace fusedkd::cpu
