// A row split over vocabulary shards (tensor parallelism): what one shard knows of a row, and how
// the shards' parts merge into the row program's state.
//
// Rank r holds the columns [vocab_start_r, vocab_start_r + C_r) of every row. It runs the loss's
// statistics pass over its own columns, with global column indices, into a ShardPartial: the Stats
// of those columns and, when the label's column is one of them, the gathered target logits s_y,
// t_y. The partials of all shards, merged in rank order (merge_shards), are the Stats of the whole
// row, and every shard finalizes the same row from them. A loss with a cross pass (cross_pass.hpp)
// exchanges its Cross sums the same way; the gradient pass then needs only the merged state and
// the shard's own columns. Every rank merges the same bytes in the same order: the rows are
// bit-identical on every rank.
//
// A loss whose statistics pass reads the target logits (RLD: K = {j : t_j < t_y}) declares
// `stats_read_target_logits`; its shards need s_y, t_y before their statistics pass
// (target_logits of the shard executors), gathered by one exchange of their own.
#pragma once

#include <cstdint>
#include <type_traits>

#include "config.hpp"
#include "cross_pass.hpp"
#include "row.hpp"

namespace fusedkd {

// The columns a shard holds: [vocab_start, vocab_start + cols) of a vocabulary of vocab_size.
struct ShardLayout {
  std::int64_t vocab_start = 0;
  std::int64_t vocab_size = 0;
};

// A shard's part of a row: the Stats of its columns and the target logits when it owns y.
template <template <class> class Loss, class A> struct ShardPartial {
  using L = Loss<A>;
  typename L::Stats stats;
  A s_y = A(0), t_y = A(0);
  std::int32_t owns_label = 0;  // this shard holds column y

  // The other shard's part merged in after this one's (rank order): the Stats merge, the target
  // logits are taken from the shard that holds them.
  FUSEDKD_HD void merge(const ShardPartial& o) {
    stats.merge(o.stats);
    if (o.owns_label) {
      s_y = o.s_y;
      t_y = o.t_y;
      owns_label = 1;
    }
  }
};

template <class L, class = void> struct stats_read_target_logits : std::false_type {};
template <class L>
struct stats_read_target_logits<L, std::void_t<decltype(L::stats_read_target_logits)>>
    : std::integral_constant<bool, bool(L::stats_read_target_logits)> {};

// The parts of `world` shards, world consecutive blocks of `rows` parts each (the layout of an
// all-gather), merged in rank order for row i.
template <class P> FUSEDKD_HD P merge_shards(const P* parts, int world, std::int64_t rows, std::int64_t i) {
  P total = parts[i];
  for (int r = 1; r < world; ++r) total.merge(parts[std::int64_t(r) * rows + i]);
  return total;
}

// The column y of a row in shard coordinates: the local index when the shard holds it, else -1.
FUSEDKD_HD_INLINE std::int64_t local_label(long long y, const ShardLayout& layout, std::int64_t cols) {
  return y >= layout.vocab_start && y < layout.vocab_start + cols ? std::int64_t(y - layout.vocab_start) : -1;
}

// Row i's whole state on any shard: the partials of the `world` shards ([world][rows], rank order)
// merged, its context (the target logits from the shard that holds y) and its Row, finalized, and
// finished when the loss has a cross pass and its merged cross sums are given. Every executor of
// the shard steps (cpu/shard_rows.hpp, cuda/shard_kernels.cuh) builds the row from this.
template <template <class> class Loss, class A> struct MergedShardRow {
  using L = Loss<A>;
  ShardPartial<Loss, A> merged;
  typename L::Context ctx;
  typename L::Row row;

  template <class Params>
  FUSEDKD_HD MergedShardRow(const Params& params, long long y, const ShardPartial<Loss, A>* parts, int world,
                            std::int64_t rows, std::int64_t i, const cross_t<L>* cross)
      : merged(merge_shards(parts, world, rows, i)), ctx(params, input(y, merged)), row(L::finalize(ctx, merged.stats)) {
    if constexpr (has_cross_pass<L>::value) {
      if (cross) L::finish(ctx, row, merge_shards(cross, world, rows, i));
    }
  }

  static FUSEDKD_HD RowInput<A> input(long long y, const ShardPartial<Loss, A>& p) {
    RowInput<A> in;
    in.y = y;
    in.s_y = p.s_y;
    in.t_y = p.t_y;
    return in;
  }
};

}  // namespace fusedkd
