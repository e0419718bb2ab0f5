// Top-k teacher KD on the CUDA executor (include/fusedkd/cuda/topk_kernels.cuh) against the CPU
// executor: every tail mode, student dtypes float32 / bfloat16 / float64, V from 5 to 40000, int64 and
// int32 indices, ignored rows, every reduction; an index out of range makes its row NaN; 0 rows.
// Runs on a GPU, or on the SIMT emulator (scripts/test_simt.sh); skips where neither is present.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <fusedkd/cuda/fusedkd_cuda.cuh>
#include <fusedkd/fusedkd.hpp>

#include "cuda_test_support.hpp"

using namespace fusedkd;
using std::int64_t;
using std::vector;

namespace {

struct Case {
  int64_t tail;
  int64_t N, V, k;
  bool int32_indices;
  Reduction reduction;
};

template <class TS> void check_case(const Case& c) {
  using A = acc_t<TS>;
  using TG = grad_t<TS>;
  std::mt19937 rng(unsigned(c.V * 7 + c.k + c.tail));
  std::normal_distribution<double> nd(0.0, 3.0);
  vector<TS> s(c.N * c.V);
  for (auto& x : s) x = from_acc<TS>(A(nd(rng)));
  vector<A> lp(c.N * c.k);
  vector<int64_t> idx(c.N * c.k);
  vector<int32_t> idx32(c.N * c.k);
  vector<int64_t> labels(c.N);
  for (int64_t i = 0; i < c.N; ++i) {
    vector<int64_t> perm(c.V);
    for (int64_t j = 0; j < c.V; ++j) perm[j] = j;
    std::shuffle(perm.begin(), perm.end(), rng);
    double rest = 1.0;
    for (int64_t e = 0; e < c.k; ++e) {  // a teacher whose top k hold most of its mass
      const double p = rest * 0.5;
      rest -= p;
      lp[i * c.k + e] = A(std::log(p));
      idx[i * c.k + e] = perm[e];
      idx32[i * c.k + e] = int32_t(perm[e]);
    }
    labels[i] = i % 4 == 1 ? -100 : int64_t(perm[0]);
  }
  TopKKDParams p;
  p.tail = c.tail;
  p.temperature = 1.5;

  // CPU
  vector<A> cpu_rows(c.N);
  vector<TG> cpu_grad(c.N * c.V);
  const TopKView<TS, A, int64_t> xh{s.data(), c.V, lp.data(), c.k, idx.data(), c.k, c.N, c.V, c.k};
  const A cpu_loss = cpu::topk_kd(p, xh, LabelsView<int64_t>{labels.data(), -100}, c.reduction,
                                  RowOutputs<A, TG>{cpu_rows.data(), cpu_grad.data(), c.V, A(1)});

  // CUDA
  Dev<TS> ds(s);
  Dev<A> dlp(lp);
  Dev<int64_t> didx(idx);
  Dev<int32_t> didx32(idx32);
  Dev<int64_t> dlabels(labels);
  Dev<A> dloss(c.reduction == Reduction::None ? size_t(c.N) : 1);
  Dev<TG> dgrad(c.N * c.V);
  const size_t ws_bytes = cuda::topk_kd_workspace_size<TS>(c.N);
  Dev<unsigned char> ws(ws_bytes);
  const TopKView<TS, A, void> xd{ds.p, c.V, dlp.p, c.k, nullptr, c.k, c.N, c.V, c.k};
  const cuda::TopKDeviceIndices di{c.int32_indices ? static_cast<const void*>(didx32.p) : static_cast<const void*>(didx.p),
                                   c.int32_indices, c.k};
  cuda::topk_kd<TS>(p, xd, di, cuda::DeviceLabels{dlabels.p, false, -100}, c.reduction,
                    cuda::DeviceOutputs<A, TG>{dloss.p, dgrad.p, c.V}, cuda::Workspace{ws.p, ws_bytes}, nullptr);
  ASSERT_EQ(cudaSuccess, cudaDeviceSynchronize());
  const vector<A> loss = dloss.get();
  const vector<TG> grad = dgrad.get();

  const double tol = std::is_same<A, double>::value ? 1e-11 : 2e-5;
  if (c.reduction == Reduction::None) {
    for (int64_t i = 0; i < c.N; ++i)
      EXPECT_NEAR(double(loss[i]), double(cpu_rows[i]), tol * std::max(1.0, std::abs(double(cpu_rows[i])))) << "row " << i;
  } else {
    EXPECT_NEAR(double(loss[0]), double(cpu_loss), tol * std::max(1.0, std::abs(double(cpu_loss))));
  }
  double gmax = 0;
  for (const TG& x : cpu_grad) gmax = std::max(gmax, std::abs(double(to_acc(x))));
  const double gtol = std::is_same<TS, bfloat16_t>::value ? 1e-2 : tol;  // one bf16 rounding of the gradient
  for (size_t j = 0; j < grad.size(); ++j)
    ASSERT_NEAR(double(to_acc(grad[j])), double(to_acc(cpu_grad[j])), gtol * gmax + 1e-12) << "element " << j;
}

class TopKCuda : public ::testing::TestWithParam<int64_t> {};

TEST_P(TopKCuda, MatchesTheCpuExecutor) {
  SKIP_WITHOUT_GPU();
  const int64_t tail = GetParam();
  check_case<float>({tail, 7, 300, 8, false, Reduction::BatchMean});
  check_case<float>({tail, 3, 40000, 64, true, Reduction::None});
  check_case<float>({tail, 5, 5, 2, false, Reduction::Sum});
  check_case<bfloat16_t>({tail, 6, 1000, 16, true, Reduction::BatchMean});
  check_case<double>({tail, 4, 777, 32, false, Reduction::None});
}

INSTANTIATE_TEST_SUITE_P(Tails, TopKCuda, ::testing::Values(0, 1, 2, 3));

TEST(TopKCudaEdges, IndexOutOfRangeMakesItsRowNaNAndZeroRowsGiveZero) {
  SKIP_WITHOUT_GPU();
  const int64_t N = 3, V = 50, k = 4;
  vector<float> s(N * V, 0.5f), lp(N * k, std::log(0.2f));
  vector<int64_t> idx(N * k);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t e = 0; e < k; ++e) idx[i * k + e] = e * 3;
  idx[1 * k + 2] = V;  // out of range in row 1
  Dev<float> ds(s), dlp(lp), dloss(N), dgrad(N * V);
  Dev<int64_t> didx(idx);
  Dev<unsigned char> ws(cuda::topk_kd_workspace_size<float>(N));
  TopKKDParams p;
  cuda::topk_kd<float>(p, TopKView<float, float, void>{ds.p, V, dlp.p, k, nullptr, k, N, V, k},
                       cuda::TopKDeviceIndices{didx.p, false, k}, cuda::DeviceLabels{}, Reduction::None,
                       cuda::DeviceOutputs<float, float>{dloss.p, dgrad.p, V},
                       cuda::Workspace{ws.p, cuda::topk_kd_workspace_size<float>(N)}, nullptr);
  ASSERT_EQ(cudaSuccess, cudaDeviceSynchronize());
  const vector<float> loss = dloss.get(), grad = dgrad.get();
  EXPECT_TRUE(std::isfinite(loss[0]) && std::isnan(loss[1]) && std::isfinite(loss[2]));
  for (int64_t j = 0; j < V; ++j) {
    EXPECT_TRUE(std::isnan(grad[V + j])) << j;
    EXPECT_TRUE(std::isfinite(grad[j])) << j;
  }

  Dev<float> one(1);
  Dev<unsigned char> ws0(cuda::topk_kd_workspace_size<float>(0));
  cuda::topk_kd<float>(p, TopKView<float, float, void>{ds.p, V, dlp.p, k, nullptr, k, 0, V, k},
                       cuda::TopKDeviceIndices{didx.p, false, k}, cuda::DeviceLabels{}, Reduction::BatchMean,
                       cuda::DeviceOutputs<float, float>{one.p, nullptr, V},
                       cuda::Workspace{ws0.p, cuda::topk_kd_workspace_size<float>(0)}, nullptr);
  ASSERT_EQ(cudaSuccess, cudaDeviceSynchronize());
  EXPECT_EQ(one.get()[0], 0.0f);
}

TEST(TopKCudaEdges, SmallGhostTailIsSummedOverTheComplementAsOnTheCpu) {
  // The student's mass outside K about 1e-6: float32 off-K gradients q_j (1 − G/(1 − Q_K)) agree with the
  // CPU's to their own relative accuracy only if both sum the complement (the estimate is off by ~10%).
  SKIP_WITHOUT_GPU();
  const int64_t N = 2, V = 3000, k = 8;
  vector<float> s(N * V), lp(N * k);
  vector<int64_t> idx(N * k);
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t j = 0; j < V; ++j) s[i * V + j] = j < k ? 20.0f + 0.1f * float(j + i) : std::sin(float(j * (i + 1)));
    for (int64_t e = 0; e < k; ++e) {
      idx[i * k + e] = e;
      lp[i * k + e] = std::log((1 - 1e-3f) / float(k));
    }
  }
  TopKKDParams p;
  vector<float> cpu_grad(N * V), cpu_rows(N);
  cpu::topk_kd(p, TopKView<float, float, int64_t>{s.data(), V, lp.data(), k, idx.data(), k, N, V, k},
               LabelsView<int64_t>{}, Reduction::None, RowOutputs<float, float>{cpu_rows.data(), cpu_grad.data(), V, 1.0f});
  Dev<float> ds(s), dlp(lp), dloss(N), dgrad(N * V);
  Dev<int64_t> didx(idx);
  Dev<unsigned char> ws(cuda::topk_kd_workspace_size<float>(N));
  cuda::topk_kd<float>(p, TopKView<float, float, void>{ds.p, V, dlp.p, k, nullptr, k, N, V, k},
                       cuda::TopKDeviceIndices{didx.p, false, k}, cuda::DeviceLabels{}, Reduction::None,
                       cuda::DeviceOutputs<float, float>{dloss.p, dgrad.p, V},
                       cuda::Workspace{ws.p, cuda::topk_kd_workspace_size<float>(N)}, nullptr);
  ASSERT_EQ(cudaSuccess, cudaDeviceSynchronize());
  const vector<float> loss = dloss.get(), grad = dgrad.get();
  for (int64_t i = 0; i < N; ++i) {
    EXPECT_NEAR(loss[i], cpu_rows[i], 1e-5 * cpu_rows[i]);
    for (int64_t j = k; j < V; ++j)
      ASSERT_NEAR(grad[i * V + j], cpu_grad[i * V + j], 1e-4 * std::abs(cpu_grad[i * V + j])) << i << ", " << j;
  }
}

}  // namespace
