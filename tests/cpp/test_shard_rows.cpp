// The vocabulary-shard executor (cpu/shard_rows.hpp) on every row-local loss of the registry, with
// its default parameters: the shards' three steps, with the exchanges done here by concatenating
// their states in rank order (what an all-gather gives every rank), against the whole-row scalar
// executor in fp64:
//   - shards of exactly kColumnBlock columns: the merge order is the whole row's, so the loss and
//     every gradient entry are bit-identical;
//   - uneven shards (1 column, the label on the last shard, a shard without the label): equal to
//     1e-12 relative.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <fusedkd/cpu/shard_rows.hpp>
#include <fusedkd/fusedkd.hpp>

using namespace fusedkd;
using std::int64_t;
using std::vector;

namespace {

struct Sharded {
  vector<double> row_loss, grad;
};

// The loss of every row and the gradient [N, C] from shards of the given widths.
template <template <class> class Loss>
Sharded run_sharded(const vector<double>& s, const vector<double>& t, const vector<int64_t>& y, int64_t N, int64_t C,
                    const vector<int64_t>& widths) {
  using L = Loss<double>;
  using Part = ShardPartial<Loss, double>;
  using Cross = cross_t<L>;
  const typename L::Params params{};
  const int world = int(widths.size());
  vector<int64_t> starts(widths.size());
  for (size_t r = 1; r < widths.size(); ++r) starts[r] = starts[r - 1] + widths[r - 1];
  // Each shard's columns, copied out as its own [N, C_r] tensors.
  vector<vector<double>> ss(world), ts(world);
  vector<cpu::ShardRows<double, double, int64_t, double>> rows(world);
  vector<double> target_logits(size_t(2 * N));
  for (int64_t i = 0; i < N; ++i) {
    if (y[size_t(i)] < 0) continue;
    target_logits[size_t(2 * i)] = s[size_t(i * C + y[size_t(i)])];
    target_logits[size_t(2 * i + 1)] = t[size_t(i * C + y[size_t(i)])];
  }
  for (int r = 0; r < world; ++r) {
    const int64_t w = widths[size_t(r)];
    ss[r].resize(size_t(N * w));
    ts[r].resize(size_t(N * w));
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < w; ++j) {
        ss[r][size_t(i * w + j)] = s[size_t(i * C + starts[size_t(r)] + j)];
        ts[r][size_t(i * w + j)] = t[size_t(i * C + starts[size_t(r)] + j)];
      }
    rows[r].x = LogitsView<double>{ss[r].data(), w, ts[r].data(), w, N, w};
    rows[r].labels = LabelsView<int64_t>{y.data(), -100};
    rows[r].layout = ShardLayout{starts[size_t(r)], C};
    rows[r].target_logits = stats_read_target_logits<L>::value ? target_logits.data() : nullptr;
  }
  vector<Part> parts(size_t(world * N));
  for (int r = 0; r < world; ++r) cpu::shard_stats_rows<Loss>(params, rows[r], parts.data() + r * N, 0, N);
  vector<Cross> cross(size_t(world * N));
  if constexpr (has_cross_pass<L>::value)
    for (int r = 0; r < world; ++r)
      cpu::shard_cross_rows<Loss>(params, rows[r], parts.data(), world, cross.data() + r * N, 0, N);
  Sharded out{vector<double>(size_t(N)), vector<double>(size_t(N * C))};
  for (int r = 0; r < world; ++r) {
    const int64_t w = widths[size_t(r)];
    vector<double> loss(static_cast<size_t>(N)), grad(static_cast<size_t>(N * w));
    cpu::shard_finish_rows<Loss>(params, rows[r], parts.data(), has_cross_pass<L>::value ? cross.data() : nullptr,
                                 world, RowOutputs<double, double>{loss.data(), grad.data(), w, 1.0}, 0, N);
    if (r == 0) out.row_loss = loss;
    for (int64_t i = 0; i < N; ++i) {
      EXPECT_EQ(loss[size_t(i)], out.row_loss[size_t(i)]) << "rank " << r << " row " << i << ": another loss";
      for (int64_t j = 0; j < w; ++j) out.grad[size_t(i * C + starts[size_t(r)] + j)] = grad[size_t(i * w + j)];
    }
  }
  return out;
}

template <template <class> class Loss> void shards_match_whole_rows(const char* name) {
  using L = Loss<double>;
  for (const bool blocks : {true, false}) {
    const vector<int64_t> widths = blocks ? vector<int64_t>{cpu::kColumnBlock, cpu::kColumnBlock, cpu::kColumnBlock}
                                          : vector<int64_t>{1, 20, 16};
    int64_t C = 0;
    for (int64_t w : widths) C += w;
    const int64_t N = 5;
    std::mt19937 rng(blocks ? 3 : 4);
    std::normal_distribution<double> normal(0.0, 3.0);
    vector<double> s(size_t(N * C)), t(size_t(N * C));
    for (auto& v : s) v = normal(rng);
    for (auto& v : t) v = normal(rng);
    vector<int64_t> y = {C - 1, -100, 0, 5, int64_t(rng() % uint64_t(C))};  // last shard, ignored, 1-col shard
    vector<double> row_loss(static_cast<size_t>(N)), grad(static_cast<size_t>(N * C));
    const LogitsView<double> x{s.data(), C, t.data(), C, N, C};
    cpu::run_rows<Loss>(typename L::Params{}, x, LabelsView<int64_t>{y.data(), -100},
                        RowOutputs<double, double>{row_loss.data(), grad.data(), C, 1.0}, 0, N);
    const Sharded got = run_sharded<Loss>(s, t, y, N, C, widths);
    for (int64_t i = 0; i < N; ++i) {
      const double want = row_loss[size_t(i)];
      if (blocks)
        EXPECT_EQ(got.row_loss[size_t(i)], want) << name << " row " << i;
      else
        EXPECT_NEAR(got.row_loss[size_t(i)], want, 1e-12 * std::max(1.0, std::fabs(want))) << name << " row " << i;
      for (int64_t j = 0; j < C; ++j) {
        const double g = got.grad[size_t(i * C + j)], w = grad[size_t(i * C + j)];
        if (blocks)
          EXPECT_EQ(g, w) << name << " row " << i << " col " << j;
        else
          EXPECT_NEAR(g, w, 1e-12) << name << " row " << i << " col " << j;
      }
    }
  }
}

}  // namespace

#define FUSEDKD_SHARD_TESTS(L) \
  TEST(ShardRows, L##ShardsMatchTheWholeRow) { shards_match_whole_rows<L>(#L); }
FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_SHARD_TESTS)
#undef FUSEDKD_SHARD_TESTS
