// The SIMT emulator's own semantics: warp shuffles (every kind, every width, CUDA's out-of-segment
// rules), barriers, per-block shared memory, the failures it must report instead of hanging
// (divergent barriers, shuffles with missing lanes, launch limits, shared memory over 48 KiB,
// __launch_bounds__), and schedule independence of the executor's fixed-order reductions.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <fusedkd/cuda/common.cuh>
#include <fusedkd/cuda/launch_kernel.cuh>
#include <fusedkd/cuda/reduce.cuh>

using fusedkd::cuda::launch_kernel;

namespace {

constexpr int kMaxThreads = 1024;

template <class... P, class... A> cudaError_t run(void (*kernel)(P...), dim3 grid, dim3 block, A... args) {
  cudaGetLastError();
  fusedkd::simt::launch("test_kernel", kernel, grid, block, nullptr, P(args)...);
  return cudaGetLastError();
}

// Reference lane maps, written from the CUDA programming guide's definitions.
int expected_down(int lane, int delta, int width) { return (lane % width) + delta < width ? lane + delta : lane; }
int expected_up(int lane, int delta, int width) { return (lane % width) >= delta ? lane - delta : lane; }
int expected_idx(int lane, int src, int width) { return (lane / width) * width + (src % width); }
int expected_xor(int lane, int mask, int width) {
  const int x = lane ^ mask;
  return x / width > lane / width ? lane : x;  // later segments are not visible
}

__global__ void shuffle_kernel(int kind, int arg, int width, int* out) {
  const int lane = int(threadIdx.x);
  const int v = 1000 + lane;
  int r = 0;
  switch (kind) {
    case 0: r = __shfl_down_sync(0xffffffffu, v, unsigned(arg), width); break;
    case 1: r = __shfl_up_sync(0xffffffffu, v, unsigned(arg), width); break;
    case 2: r = __shfl_sync(0xffffffffu, v, arg, width); break;
    default: r = __shfl_xor_sync(0xffffffffu, v, arg, width); break;
  }
  out[lane] = r - 1000;
}

TEST(SimtShuffle, EveryKindAndWidthFollowsCuda) {
  std::vector<int> out(32);
  for (int width : {1, 2, 4, 8, 16, 32})
    for (int kind = 0; kind < 4; ++kind)
      for (int arg : {0, 1, 2, 3, 5, 8, 16, 31}) {
        std::fill(out.begin(), out.end(), -1);
        ASSERT_EQ(cudaSuccess, run(&shuffle_kernel, 1, 32, kind, arg, width, out.data()));
        for (int lane = 0; lane < 32; ++lane) {
          const int want = kind == 0   ? expected_down(lane, arg, width)
                           : kind == 1 ? expected_up(lane, arg, width)
                           : kind == 2 ? expected_idx(lane, arg, width)
                                       : expected_xor(lane, arg, width);
          ASSERT_EQ(want, out[size_t(lane)]) << "kind " << kind << " width " << width << " arg " << arg << " lane " << lane;
        }
      }
}

__global__ void shuffle_double_kernel(double* out) {
  const double v = 0.5 + double(threadIdx.x);
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, v, 3u, 8);
}

TEST(SimtShuffle, EightByteValues) {
  std::vector<double> out(64);
  ASSERT_EQ(cudaSuccess, run(&shuffle_double_kernel, 1, 64, out.data()));
  for (int t = 0; t < 64; ++t) EXPECT_EQ(0.5 + double(expected_down(t % 32, 3, 8) + (t / 32) * 32), out[size_t(t)]);
}

// The executor's group reduction over every width: a sum of lane values ends in each group's first
// lane (group_reduce) and in every lane (group_all_reduce).
__global__ void group_sum_kernel(int width, long long* first, long long* all) {
  const int lane = int(threadIdx.x & 31);
  const long long v = (long long)(threadIdx.x) * 7 + 1;
  const int in_group = lane & (width - 1);
  const long long r = fusedkd::cuda::group_reduce(v, in_group, width);
  const long long b = fusedkd::cuda::group_all_reduce(v, in_group, width);
  if (in_group == 0) first[threadIdx.x / unsigned(width)] = r;
  all[threadIdx.x] = b;
}

TEST(SimtShuffle, GroupReductionsOfEveryWidth) {
  for (int width : {1, 2, 4, 8, 16, 32}) {
    const int n = 64, groups = n / width;
    std::vector<long long> first(static_cast<size_t>(groups)), all(static_cast<size_t>(n));
    ASSERT_EQ(cudaSuccess, run(&group_sum_kernel, 1, n, width, first.data(), all.data()));
    for (int g = 0; g < groups; ++g) {
      long long want = 0;
      for (int t = g * width; t < (g + 1) * width; ++t) want += (long long)t * 7 + 1;
      EXPECT_EQ(want, first[size_t(g)]) << "width " << width << " group " << g;
      for (int t = g * width; t < (g + 1) * width; ++t) EXPECT_EQ(want, all[size_t(t)]);
    }
  }
}

// ----------------------------------------------------------------------------- barriers, shared memory

__global__ void neighbour_kernel(int with_barrier, unsigned* out) {
  FUSEDKD_SHARED(slots, unsigned[kMaxThreads]);
  const unsigned t = threadIdx.x, n = blockDim.x;
  slots[t] = t + 1;
  if (with_barrier) __syncthreads();
  out[blockIdx.x * n + t] = slots[(t + 1) % n];
}

TEST(SimtBarrier, OrdersSharedMemoryAndItsAbsenceIsVisible) {
  const unsigned n = 256, blocks = 3;
  std::vector<unsigned> out(n * blocks);
  ASSERT_EQ(cudaSuccess, run(&neighbour_kernel, blocks, n, 1, out.data()));
  for (unsigned b = 0; b < blocks; ++b)
    for (unsigned t = 0; t < n; ++t) ASSERT_EQ((t + 1) % n + 1, out[b * n + t]);
  // Without the barrier a thread reads its neighbour's slot before the neighbour ran: the
  // never-written shared memory reads as the 0xff poison, in every block (fresh per block).
  for (std::uint64_t seed : {0ull, 7ull}) {
    fusedkd::simt::set_schedule_seed(seed);
    ASSERT_EQ(cudaSuccess, run(&neighbour_kernel, blocks, n, 0, out.data()));
    for (unsigned b = 0; b < blocks; ++b) {
      int poisoned = 0;
      for (unsigned t = 0; t < n; ++t) poisoned += out[b * n + t] == 0xffffffffu;
      EXPECT_GT(poisoned, 0) << "seed " << seed << " block " << b;
    }
  }
  fusedkd::simt::set_schedule_seed(0);
}

__global__ void thread_context_kernel(unsigned* out) {
  const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  out[bid * threads + tid] = bid * 100000 + tid;
}

TEST(SimtLaunch, ThreadAndBlockIndicesIn3D) {
  const dim3 grid(3, 2, 2), block(4, 8, 2);
  const unsigned total = 12 * 64;
  std::vector<unsigned> out(total, 0);
  ASSERT_EQ(cudaSuccess, run(&thread_context_kernel, grid, block, out.data()));
  for (unsigned b = 0; b < 12; ++b)
    for (unsigned t = 0; t < 64; ++t) ASSERT_EQ(b * 100000 + t, out[b * 64 + t]);
}

// ----------------------------------------------------------------------------- reported failures

__global__ void early_exit_kernel(int* out) {
  if (threadIdx.x >= 16) return;  // half the block never reaches the barrier
  __syncthreads();
  out[threadIdx.x] = 1;
}

TEST(SimtFailure, BarrierNotReachedByEveryThreadFailsWithoutHanging) {
  std::vector<int> out(64);
  EXPECT_EQ(cudaErrorLaunchFailure, run(&early_exit_kernel, 2, 64, out.data()));
  const std::string& m = fusedkd::simt::last_failure();
  EXPECT_NE(m.find("test_kernel"), std::string::npos) << m;
  EXPECT_NE(m.find("block (0,0,0)"), std::string::npos) << m;
  EXPECT_NE(m.find("__syncthreads()"), std::string::npos) << m;
  EXPECT_NE(m.find("has exited"), std::string::npos) << m;
  EXPECT_NE(m.find("test_emulator.cpp"), std::string::npos) << m;
  // The runtime's error string carries the message; the next launch works again.
  EXPECT_NE(std::string(cudaGetErrorString(cudaErrorLaunchFailure)).find("has exited"), std::string::npos);
  EXPECT_EQ(cudaSuccess, run(&neighbour_kernel, 1, 32, 1, reinterpret_cast<unsigned*>(out.data())));
}

__global__ void divergent_sites_kernel(int* out) {
  if (threadIdx.x % 2)
    __syncthreads();
  else
    __syncthreads();
  out[threadIdx.x] = 1;
}

TEST(SimtFailure, BarriersAtDifferentSitesAreDivergent) {
  std::vector<int> out(32);
  EXPECT_EQ(cudaErrorLaunchFailure, run(&divergent_sites_kernel, 1, 32, out.data()));
  EXPECT_NE(fusedkd::simt::last_failure().find("divergent barriers"), std::string::npos) << fusedkd::simt::last_failure();
}

__global__ void shuffle_missing_lane_kernel(int* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, int(threadIdx.x), 1u, 32);
}

TEST(SimtFailure, FullMaskShuffleWithAnExitedLane) {
  std::vector<int> out(32);
  EXPECT_EQ(cudaErrorLaunchFailure, run(&shuffle_missing_lane_kernel, 1, 32, out.data()));
  const std::string& m = fusedkd::simt::last_failure();
  EXPECT_NE(m.find("__shfl_down_sync"), std::string::npos) << m;
  EXPECT_NE(m.find("thread (5,0,0) has exited"), std::string::npos) << m;
}

__global__ void shuffle_vs_barrier_kernel(int* out) {
  int v = int(threadIdx.x);
  if (threadIdx.x < 32)
    v = __shfl_down_sync(0xffffffffu, v, 1u, 32);
  else
    __syncthreads();
  out[threadIdx.x] = v;
}

TEST(SimtFailure, ShuffleOnPartialWarpMaskIsReported) {
  // 48 threads: warp 1 has 16 lanes, so a full mask names lanes that do not exist.
  std::vector<int> out(48);
  EXPECT_EQ(cudaErrorLaunchFailure, run(&shuffle_kernel, 1, 16, 0, 1, 32, out.data()));
  EXPECT_NE(fusedkd::simt::last_failure().find("does not name exactly"), std::string::npos);
  // Warp 0 shuffles while warp 1 waits at a barrier warp 0 never reaches: a deadlock, reported.
  EXPECT_EQ(cudaErrorLaunchFailure, run(&shuffle_vs_barrier_kernel, 1, 64, out.data()));
  EXPECT_NE(fusedkd::simt::last_failure().find("__syncthreads()"), std::string::npos) << fusedkd::simt::last_failure();
}

__global__ void bad_width_kernel(int* out) { out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0, 12); }

TEST(SimtFailure, ShuffleWidthMustBeAPowerOfTwo) {
  std::vector<int> out(32);
  EXPECT_EQ(cudaErrorLaunchFailure, run(&bad_width_kernel, 1, 32, out.data()));
  EXPECT_NE(fusedkd::simt::last_failure().find("not a power of two"), std::string::npos);
}

__global__ void big_shared_kernel(float* out) {
  FUSEDKD_SHARED(a, float[8192]);
  FUSEDKD_SHARED(b, float[8192]);
  a[threadIdx.x] = 1;
  b[threadIdx.x] = 2;
  out[threadIdx.x] = a[threadIdx.x] + b[threadIdx.x];
}

TEST(SimtFailure, StaticSharedMemoryOver48KiB) {
  std::vector<float> out(32);
  EXPECT_EQ(cudaErrorLaunchFailure, run(&big_shared_kernel, 1, 32, out.data()));
  EXPECT_NE(fusedkd::simt::last_failure().find("48 KiB"), std::string::npos) << fusedkd::simt::last_failure();
}

TEST(SimtFailure, LaunchLimits) {
  std::vector<unsigned> out(4096);
  EXPECT_EQ(cudaErrorInvalidConfiguration, run(&thread_context_kernel, 1, 1025, out.data()));
  EXPECT_EQ(cudaErrorInvalidConfiguration, run(&thread_context_kernel, dim3(1, 65536), 1, out.data()));
  EXPECT_EQ(cudaErrorInvalidConfiguration, run(&thread_context_kernel, 1, dim3(1, 1, 65), out.data()));
  EXPECT_EQ(cudaErrorInvalidConfiguration, run(&thread_context_kernel, 0, 32, out.data()));
}

__global__ void __launch_bounds__(128) bounded_kernel(int* out) { out[threadIdx.x] = 1; }

TEST(SimtFailure, LaunchBoundsCheckedOnTheHost) {
  std::vector<int> out(256);
  launch_kernel<128>("bounded_kernel", &bounded_kernel, 1, 128, nullptr, out.data());
  EXPECT_EQ(cudaSuccess, cudaGetLastError());
  try {
    launch_kernel<128>("bounded_kernel", &bounded_kernel, 1, 256, nullptr, out.data());
    FAIL() << "a block above __launch_bounds__ was launched";
  } catch (const fusedkd::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bounded_kernel: a block of 256 threads exceeds"), std::string::npos) << e.what();
  }
}

// ----------------------------------------------------------------------------- schedules

// Block reductions of a value per thread, one block per row: the executor's reduction is a fixed
// tree, so the result must not depend on the order in which threads and blocks run.
__global__ void block_sum_kernel(const float* x, float* out, unsigned* order, unsigned* counter) {
  FUSEDKD_SHARED(storage, fusedkd::cuda::BlockReduceStorage<sizeof(float)>);
  const float v = x[blockIdx.x * blockDim.x + threadIdx.x];
  const float r = fusedkd::cuda::block_all_reduce(v, storage);
  if (threadIdx.x == 0) {
    out[blockIdx.x] = r;
    order[(*counter)++] = blockIdx.x;
  }
}

TEST(SimtSchedule, SeedsVaryTheOrderButNotFixedOrderReductions) {
  const unsigned blocks = 16, threads = 512;
  std::vector<float> x(blocks * threads);
  for (size_t k = 0; k < x.size(); ++k) x[k] = float(std::sin(double(k)) * 1e3);  // rounding-order sensitive
  std::vector<std::vector<float>> results;
  std::set<std::vector<unsigned>> orders;
  for (std::uint64_t seed : {0ull, 1ull, 2ull, 12345ull}) {
    fusedkd::simt::set_schedule_seed(seed);
    std::vector<float> out(blocks);
    std::vector<unsigned> order(blocks);
    unsigned counter = 0;
    ASSERT_EQ(cudaSuccess, run(&block_sum_kernel, blocks, threads, static_cast<const float*>(x.data()), out.data(),
                               order.data(), &counter));
    results.push_back(out);
    orders.insert(order);
  }
  fusedkd::simt::set_schedule_seed(0);
  for (size_t k = 1; k < results.size(); ++k)
    EXPECT_EQ(0, std::memcmp(results[0].data(), results[k].data(), blocks * sizeof(float)));
  EXPECT_GE(orders.size(), 3u) << "seeds should run blocks in different orders";
}

// ----------------------------------------------------------------------------- runtime

TEST(SimtRuntime, MallocIsExactPoisonedAndFreeChecksPointers) {
  unsigned char* p = nullptr;
  ASSERT_EQ(cudaSuccess, cudaMalloc(&p, 37));
  ASSERT_NE(nullptr, p);
  EXPECT_EQ(0u, reinterpret_cast<std::uintptr_t>(p) % 256);
  for (int k = 0; k < 37; ++k) EXPECT_EQ(0xff, p[k]);
  EXPECT_EQ(cudaSuccess, cudaMemset(p, 0, 37));
  EXPECT_EQ(0, p[36]);
  int local = 0;
  EXPECT_EQ(cudaErrorInvalidValue, cudaFree(&local));
  EXPECT_EQ(cudaErrorInvalidValue, cudaGetLastError());
  EXPECT_EQ(cudaSuccess, cudaGetLastError());  // not sticky
  EXPECT_EQ(cudaSuccess, cudaFree(p));
  int n = 0;
  EXPECT_EQ(cudaSuccess, cudaGetDeviceCount(&n));
  EXPECT_EQ(1, n);
  cudaStream_t s;
  EXPECT_EQ(cudaSuccess, cudaStreamCreate(&s));
  EXPECT_EQ(cudaErrorNotSupported, cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  cudaGetLastError();
  EXPECT_EQ(cudaSuccess, cudaStreamDestroy(s));
}

}  // namespace
