// The vocabulary-shard steps on the CUDA executor (cuda/shard_launch.cuh) against the CPU shard
// executor (cpu/shard_rows.hpp; itself checked against the whole row in test_shard_rows.cpp), for
// every row-local loss of the registry with its default parameters. The ranks of a group are
// simulated in one process: each rank's statistics are written where an all-gather puts them
// ([world][N]), then every rank finishes its own shard.
//   - loss and gradient within the dtype's tolerance of the CPU's (summation orders differ):
//     float64 1e-10 relative, float32 1e-4 loss / 1e-3 gradient, bfloat16 1.6e-2 gradient;
//   - every rank's loss bit-identical to rank 0's;
//   - the exchanged bytes are the CPU executor's: finishing the CPU's partials on the device gives
//     the CPU's row losses (bit for bit on the emulator, where both are the same compiler's code);
//   - uneven shards (a 1-column shard, the label on the last shard), widths on the Group and the
//     Block plans, ignored rows, every reduction, 0 rows; a label outside the vocabulary makes its
//     row NaN.
// Runs on a GPU, or on the SIMT emulator (scripts/test_simt.sh); skips where neither is present.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fusedkd/cpu/shard_rows.hpp>
#include <fusedkd/cuda/shard_launch.cuh>
#include <fusedkd/fusedkd.hpp>

#include "cuda_test_support.hpp"

using namespace fusedkd;
using std::int64_t;
using std::vector;

namespace {

struct ShardCase {
  vector<int64_t> widths;
  int64_t N;
  Reduction reduction;
};

std::string reduction_name(Reduction r) {
  return r == Reduction::None ? "none" : r == Reduction::Sum ? "sum" : "batchmean";
}

template <class T> double tol_of() { return 1e-3; }
template <> double tol_of<double>() { return 1e-10; }
template <> double tol_of<bfloat16_t>() { return 1.6e-2; }

// One rank's shard: its columns of the whole [N, C] logits, on the host and the device.
template <class TS, class TT> struct Shard {
  int64_t start = 0, width = 0;
  vector<TS> s;
  vector<TT> t;
};

// The whole batch, its shards, the labels and the target logits (s_y, t_y) in the accumulation type.
template <class TS, class TT> struct ShardedBatch {
  using A = acc_t<TS>;
  int64_t N = 0, C = 0;
  vector<Shard<TS, TT>> shards;
  vector<int64_t> y;
  vector<A> target_logits;
  int64_t counted = 0;
};

template <class TS, class TT>
ShardedBatch<TS, TT> make_batch(const ShardCase& c, unsigned seed, int64_t bad_row = -1) {
  using A = acc_t<TS>;
  ShardedBatch<TS, TT> b;
  b.N = c.N;
  for (int64_t w : c.widths) b.C += w;
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 3.0);
  vector<TS> s(size_t(b.N * b.C));
  vector<TT> t(size_t(b.N * b.C));
  for (auto& v : s) v = from_acc<TS>(A(normal(rng)));
  for (auto& v : t) v = from_acc<TT>(A(normal(rng)));
  b.y.resize(size_t(b.N));
  for (int64_t i = 0; i < b.N; ++i) {  // the last column (last shard), ignored, column 0 (first shard), random
    const int64_t kind = i % 4;
    b.y[size_t(i)] = kind == 0 ? b.C - 1 : kind == 1 ? -100 : kind == 2 ? 0 : int64_t(rng() % uint64_t(b.C));
  }
  if (bad_row >= 0) b.y[size_t(bad_row)] = b.C;  // outside the vocabulary
  b.target_logits.assign(size_t(2 * b.N), A(0));
  for (int64_t i = 0; i < b.N; ++i) {
    const int64_t yi = b.y[size_t(i)];
    if (yi < 0 || yi >= b.C) continue;
    b.counted += 1;
    b.target_logits[size_t(2 * i)] = A(to_acc(s[size_t(i * b.C + yi)]));
    b.target_logits[size_t(2 * i + 1)] = A(to_acc(t[size_t(i * b.C + yi)]));
  }
  if (bad_row >= 0) b.counted += 1;  // counted, though NaN
  int64_t start = 0;
  for (int64_t w : c.widths) {
    Shard<TS, TT> sh;
    sh.start = start;
    sh.width = w;
    sh.s.resize(size_t(b.N * w));
    sh.t.resize(size_t(b.N * w));
    for (int64_t i = 0; i < b.N; ++i)
      for (int64_t j = 0; j < w; ++j) {
        sh.s[size_t(i * w + j)] = s[size_t(i * b.C + start + j)];
        sh.t[size_t(i * w + j)] = t[size_t(i * b.C + start + j)];
      }
    b.shards.push_back(std::move(sh));
    start += w;
  }
  return b;
}

// What a run of the steps gives: the loss of every rank and the gradient of each shard (as doubles).
struct RankResults {
  vector<vector<double>> loss;  // [world][1 or N]
  vector<vector<double>> grad;  // [world][N * width]
};

template <class T> vector<double> to_double(const vector<T>& v) {
  vector<double> out(v.size());
  for (size_t k = 0; k < v.size(); ++k) out[k] = double(to_acc(v[k]));
  return out;
}

// The CPU shard executor: the three steps on every rank, the exchanges by concatenation.
template <template <class> class Loss, class TS, class TT>
RankResults run_cpu(const ShardedBatch<TS, TT>& b, Reduction r, vector<ShardPartial<Loss, acc_t<TS>>>* parts_out,
                    vector<cross_t<Loss<acc_t<TS>>>>* cross_out) {
  using A = acc_t<TS>;
  using L = Loss<A>;
  using TG = grad_t<TS>;
  const typename L::Params params{};
  const int world = int(b.shards.size());
  const int64_t N = b.N;
  vector<cpu::ShardRows<TS, TT, int64_t, A>> rows(static_cast<size_t>(world));
  for (int k = 0; k < world; ++k) {
    const auto& sh = b.shards[size_t(k)];
    rows[size_t(k)].x = LogitsView<TS, TT>{sh.s.data(), sh.width, sh.t.data(), sh.width, N, sh.width};
    rows[size_t(k)].labels = LabelsView<int64_t>{b.y.data(), -100};
    rows[size_t(k)].layout = ShardLayout{sh.start, b.C};
    rows[size_t(k)].target_logits = stats_read_target_logits<L>::value ? b.target_logits.data() : nullptr;
  }
  vector<ShardPartial<Loss, A>> parts(size_t(world * N));
  for (int k = 0; k < world; ++k) cpu::shard_stats_rows<Loss>(params, rows[size_t(k)], parts.data() + k * N, 0, N);
  vector<cross_t<L>> cross(size_t(world * N));
  if constexpr (has_cross_pass<L>::value)
    for (int k = 0; k < world; ++k)
      cpu::shard_cross_rows<Loss>(params, rows[size_t(k)], parts.data(), world, cross.data() + k * N, 0, N);
  const A scale = r == Reduction::BatchMean ? (b.counted ? A(1) / A(b.counted) : A(0)) : A(1);
  RankResults res;
  for (int k = 0; k < world; ++k) {
    const int64_t w = b.shards[size_t(k)].width;
    vector<A> row_loss(static_cast<size_t>(N));
    vector<TG> grad(static_cast<size_t>(N * w));
    cpu::shard_finish_rows<Loss>(params, rows[size_t(k)], parts.data(), has_cross_pass<L>::value ? cross.data() : nullptr,
                                 world, RowOutputs<A, TG>{row_loss.data(), grad.data(), w, scale}, 0, N);
    if (r == Reduction::None) {
      res.loss.push_back(to_double(row_loss));
    } else {
      double sum = 0;
      for (A v : row_loss) sum += double(v);
      res.loss.push_back({sum * double(scale)});
    }
    res.grad.push_back(to_double(grad));
  }
  if (parts_out) *parts_out = parts;
  if (cross_out) *cross_out = cross;
  return res;
}

// The CUDA steps. given_parts: finish from these partials (the CPU's) instead of the device's own.
template <template <class> class Loss, class TS, class TT>
RankResults run_cuda(const ShardedBatch<TS, TT>& b, Reduction r,
                     const vector<ShardPartial<Loss, acc_t<TS>>>* given_parts = nullptr,
                     const vector<cross_t<Loss<acc_t<TS>>>>* given_cross = nullptr) {
  using A = acc_t<TS>;
  using L = Loss<A>;
  using TG = grad_t<TS>;
  using Part = ShardPartial<Loss, A>;
  using Cross = cross_t<L>;
  const typename L::Params params{};
  const int world = int(b.shards.size());
  const int64_t N = b.N;
  Dev<int64_t> dy(b.y);
  Dev<A> dtl(b.target_logits);
  vector<std::unique_ptr<Dev<TS>>> ds;
  vector<std::unique_ptr<Dev<TT>>> dt;
  vector<cuda::ShardInputs<TS, TT>> in(static_cast<size_t>(world));
  for (int k = 0; k < world; ++k) {
    const auto& sh = b.shards[size_t(k)];
    ds.emplace_back(new Dev<TS>(sh.s));
    dt.emplace_back(new Dev<TT>(sh.t));
    in[size_t(k)].x = LogitsView<TS, TT>{ds.back()->p, sh.width, dt.back()->p, sh.width, N, sh.width};
    in[size_t(k)].labels = cuda::DeviceLabels{dy.p, false, -100};
    in[size_t(k)].layout = ShardLayout{sh.start, b.C};
    in[size_t(k)].target_logits = stats_read_target_logits<L>::value ? dtl.p : nullptr;
  }
  // The all-gathered states: rank k writes rows [k N, (k + 1) N).
  Dev<Part> parts(size_t(world * N));
  Dev<Cross> cross(size_t(world * N));
  if (given_parts) {
    EXPECT_EQ(cudaSuccess, cudaMemcpy(parts.p, given_parts->data(), given_parts->size() * sizeof(Part),
                                      cudaMemcpyHostToDevice));
    if (has_cross_pass<L>::value) {
      EXPECT_EQ(cudaSuccess, cudaMemcpy(cross.p, given_cross->data(), given_cross->size() * sizeof(Cross),
                                        cudaMemcpyHostToDevice));
    }
  } else {
    for (int k = 0; k < world; ++k) cuda::shard_stats<Loss>(params, in[size_t(k)], parts.p + k * N, nullptr);
    if constexpr (has_cross_pass<L>::value)
      for (int k = 0; k < world; ++k)
        cuda::shard_cross<Loss>(params, in[size_t(k)], parts.p, world, cross.p + k * N, nullptr);
  }
  RankResults res;
  for (int k = 0; k < world; ++k) {
    const int64_t w = b.shards[size_t(k)].width;
    Dev<A> loss(r == Reduction::None ? size_t(N) : 1);
    Dev<TG> grad(size_t(N * w));
    const size_t ws_bytes = cuda::shard_finish_workspace_size<TS>(N);
    Dev<unsigned char> ws(ws_bytes);
    cuda::shard_finish<Loss>(params, in[size_t(k)], parts.p, has_cross_pass<L>::value ? cross.p : nullptr, world, r,
                             cuda::DeviceOutputs<A, TG>{loss.p, grad.p, w}, cuda::Workspace{ws.p, ws_bytes}, nullptr);
    EXPECT_EQ(cudaSuccess, cudaDeviceSynchronize());
    res.loss.push_back(to_double(loss.get()));
    res.grad.push_back(to_double(grad.get()));
  }
  return res;
}

::testing::AssertionResult close(const vector<double>& got, const vector<double>& want, double rtol, double atol,
                                 const std::string& what) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << what << ": size " << got.size() << " vs " << want.size();
  for (size_t k = 0; k < want.size(); ++k) {
    const double d = std::fabs(got[k] - want[k]);
    if (!(d <= atol + rtol * std::fabs(want[k])))
      return ::testing::AssertionFailure() << what << " [" << k << "]: cuda " << got[k] << " cpu " << want[k];
  }
  return ::testing::AssertionSuccess();
}

bool same_bits(const vector<double>& a, const vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t k = 0; k < a.size(); ++k)
    if (std::memcmp(&a[k], &b[k], sizeof(double)) != 0) return false;
  return true;
}

template <template <class> class Loss, class TS, class TT> void check_loss(const char* name, const ShardCase& c) {
  const auto b = make_batch<TS, TT>(c, unsigned(c.N * 31 + c.widths.size()));
  const int world = int(c.widths.size());
  SCOPED_TRACE(std::string(name) + " reduction " + reduction_name(c.reduction) + " world " + std::to_string(world) +
               " N " + std::to_string(c.N));
  vector<ShardPartial<Loss, acc_t<TS>>> cpu_parts;
  vector<cross_t<Loss<acc_t<TS>>>> cpu_cross;
  const RankResults cpu = run_cpu<Loss>(b, c.reduction, &cpu_parts, &cpu_cross);
  const RankResults gpu = run_cuda<Loss>(b, c.reduction);
  const double tol = std::max(tol_of<TS>(), tol_of<TT>());
  const bool f64 = std::is_same<TS, double>::value;
  const double loss_rtol = f64 ? 1e-10 : 1e-4;
  for (int k = 0; k < world; ++k) {
    const std::string rank = "rank " + std::to_string(k);
    EXPECT_TRUE(close(gpu.loss[size_t(k)], cpu.loss[size_t(k)], loss_rtol, f64 ? 1e-12 : 1e-5, rank + " loss"));
    EXPECT_TRUE(close(gpu.grad[size_t(k)], cpu.grad[size_t(k)], tol, f64 ? 1e-12 : 3e-6, rank + " grad"));
    EXPECT_TRUE(same_bits(gpu.loss[size_t(k)], gpu.loss[0])) << rank << ": not rank 0's loss bit for bit";
  }
  // The CPU's exchanged bytes finished on the device.
  const RankResults mixed = run_cuda<Loss>(b, c.reduction, &cpu_parts, &cpu_cross);
  for (int k = 0; k < world; ++k) {
#if defined(FUSEDKD_SIMT)
    if (c.reduction == Reduction::None) {
      EXPECT_TRUE(same_bits(mixed.loss[size_t(k)], cpu.loss[size_t(k)])) << "rank " << k;
    }
#endif
    EXPECT_TRUE(close(mixed.loss[size_t(k)], cpu.loss[size_t(k)], loss_rtol, f64 ? 1e-12 : 1e-5, "cpu partials loss"));
  }
}

// Shard widths on both plans: Group (≤ 1024 columns) and Block (to 8192 columns, and beyond).
vector<ShardCase> cases() {
  return {
      {{1, 20, 16}, 9, Reduction::None},            // a 1-column shard
      {{1, 20, 16}, 9, Reduction::BatchMean},
      {{300, 2, 1500, 9}, 6, Reduction::Sum},       // four ranks, a Block shard among Group shards
      {{1000, 9000}, 4, Reduction::BatchMean},      // a Block shard of 512 threads
      {{7, 5}, 0, Reduction::BatchMean},            // no rows
  };
}

template <template <class> class Loss, class TS, class TT> void check_all(const char* name) {
  SKIP_WITHOUT_GPU();
  for (const ShardCase& c : cases()) check_loss<Loss, TS, TT>(name, c);
}

// A label outside [0, V): its row's loss and gradient are NaN on every rank, the other rows are not.
template <template <class> class Loss> void bad_label_is_nan(const char* name) {
  SKIP_WITHOUT_GPU();
  if (!Loss<float>::uses_label) return;
  SCOPED_TRACE(name);
  const ShardCase c{{10, 6}, 5, Reduction::None};
  const auto b = make_batch<float, float>(c, 7u, /*bad_row=*/3);
  const RankResults gpu = run_cuda<Loss>(b, Reduction::None);
  for (size_t k = 0; k < gpu.loss.size(); ++k) {
    for (int64_t i = 0; i < c.N; ++i)
      EXPECT_EQ(std::isnan(gpu.loss[k][size_t(i)]), i == 3) << "rank " << k << " row " << i;
    const int64_t w = c.widths[k];
    for (int64_t j = 0; j < w; ++j) EXPECT_TRUE(std::isnan(gpu.grad[k][size_t(3 * w + j)])) << "rank " << k;
    EXPECT_FALSE(std::isnan(gpu.grad[k][0])) << "rank " << k;
  }
}

}  // namespace

#define FUSEDKD_SHARD_CUDA_TESTS(L)                                                                   \
  TEST(CudaShards, L##Float32) { check_all<L, float, float>(#L); }                                    \
  TEST(CudaShards, L##BFloat16) { check_all<L, bfloat16_t, bfloat16_t>(#L); }                         \
  TEST(CudaShards, L##Float32WithBFloat16Teacher) { check_all<L, float, bfloat16_t>(#L); }            \
  TEST(CudaShards, L##Float64) { check_all<L, double, double>(#L); }                                  \
  TEST(CudaShards, L##BadLabelIsNaN) { bad_label_is_nan<L>(#L); }
FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_SHARD_CUDA_TESTS)
#undef FUSEDKD_SHARD_CUDA_TESTS

TEST(CudaShards, HostChecksNameTheArgument) {
  SKIP_WITHOUT_GPU();
  float buf[4] = {};
  cuda::ShardInputs<float, float> in{LogitsView<float, float>{buf, 2, buf, 2, 1, 2}, cuda::DeviceLabels{}, ShardLayout{3, 4},
                                     nullptr};
  ShardPartial<KD, float> part;
  try {
    cuda::shard_stats<KD>(KDParams{}, in, &part, nullptr);
    FAIL() << "a shard outside the vocabulary was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocab_start"), std::string::npos) << e.what();
  }
  in.layout = ShardLayout{0, 4};
  const int64_t label = 0;  // never read: the checks run on the host before any launch
  in.labels = cuda::DeviceLabels{&label, false, -100};
  try {
    cuda::shard_stats<RLD>(RLDParams{}, in, reinterpret_cast<ShardPartial<RLD, float>*>(buf), nullptr);
    FAIL() << "RLD without target logits was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target_logits"), std::string::npos) << e.what();
  }
}
