// Google Benchmark of the header-only CUDA executor: every loss (loss + gradient, batchmean),
// fp32 and bf16, vision and vocabulary shapes; one rank's vocabulary-shard steps; the backward's
// gradient scaling; and, in the same
// run, a roofline kernel with the fused losses' traffic (g = s + t: two reads and one write).
//
// Timing: CUDA events around each launch sequence on one stream (manual time); before every
// iteration, outside the timed span, a buffer larger than the L2 is overwritten, so each run starts
// with cold caches. Bytes counted as read student + read teacher (weak) + write gradient, once
// each, so bytes_per_second is the effective bandwidth; compare it with the roofline's.
//
//   build/.../benchmarks/bench_cuda_executor --benchmark_filter='kd/' --benchmark_format=csv
// Without a CUDA device it prints that and exits 0 (the binary builds wherever nvcc does).
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <fusedkd/cuda/fusedkd_cuda.cuh>
#include <fusedkd/fusedkd.hpp>

namespace {

using fusedkd::Reduction;
using bf16 = fusedkd::bfloat16_t;
using std::int64_t;

// Bytes overwritten before each timed run: more than any current L2 (50 MB on an H100).
constexpr size_t kFlushBytes = size_t(256) << 20;
constexpr int kInitThreads = 256;
constexpr float kLogitScale = 3.0f;  // logits ~ N(0, 3²), as in the CPU benchmark

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "bench_cuda_executor: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// A uniform in [0, 1) from the bits of a hashed counter (splitmix64 finalizer).
__device__ __forceinline__ float hashed_uniform(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return float(x >> 40) * (1.0f / 16777216.0f);
}

// Logits ≈ N(0, scale²) (Irwin–Hall of four uniforms), generated on the device.
template <class T> __global__ void fill_logits(T* p, int64_t n, std::uint64_t seed, float scale) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += int64_t(gridDim.x) * blockDim.x) {
    const std::uint64_t base = (seed << 40) ^ (std::uint64_t(k) << 2);
    const float u = hashed_uniform(base) + hashed_uniform(base + 1) + hashed_uniform(base + 2) + hashed_uniform(base + 3);
    p[k] = fusedkd::from_acc<T>((u - 2.0f) * scale * 1.7320508f);  // Var(u) = 1/3
  }
}

__global__ void fill_labels(int64_t* y, int64_t n, int64_t C) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = int64_t(hashed_uniform(std::uint64_t(i) * 7919u) * float(C)) % C;
}

unsigned init_blocks(int64_t n) { return unsigned(std::min<int64_t>((n + kInitThreads - 1) / kInitThreads, 65535)); }

// The roofline: g = s + t over the flat [N, C] arrays, 16-byte vectors (cudaMalloc'd bases are
// 256-byte aligned), a scalar tail.
template <class T> __global__ void add_kernel(const T* s, const T* t, T* g, int64_t n) {
  constexpr int K = 16 / int(sizeof(T));
  const int64_t nvec = n / K;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; v < nvec; v += stride) {
    float a[K], b[K];
    fusedkd::cuda::load_vec<K>(s + v * K, a);
    fusedkd::cuda::load_vec<K>(t + v * K, b);
#pragma unroll
    for (int k = 0; k < K; ++k) a[k] += b[k];
    fusedkd::cuda::store_vec<K>(g + v * K, a);
  }
  for (int64_t k = nvec * K + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride)
    g[k] = fusedkd::from_acc<T>(fusedkd::to_acc(s[k]) + fusedkd::to_acc(t[k]));
}

// Device buffers of one [N, C] problem, freed on scope exit.
template <class T> struct Batch {
  using A = fusedkd::acc_t<T>;
  int64_t N, C;
  T *s = nullptr, *t = nullptr, *g = nullptr, *g2 = nullptr;
  int64_t* y = nullptr;
  A* loss = nullptr;
  A* factor = nullptr;
  void* ws = nullptr;
  size_t ws_bytes = 0;
  void* flush = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;

  Batch(int64_t n, int64_t c, size_t workspace_bytes, bool weak_grad) : N(n), C(c), ws_bytes(workspace_bytes) {
    const size_t bytes = size_t(N * C) * sizeof(T);
    check(cudaMalloc(&s, bytes), "cudaMalloc student");
    check(cudaMalloc(&t, bytes), "cudaMalloc teacher");
    check(cudaMalloc(&g, bytes), "cudaMalloc grad");
    if (weak_grad) check(cudaMalloc(&g2, bytes), "cudaMalloc grad_weak");
    check(cudaMalloc(&y, size_t(N) * sizeof(int64_t)), "cudaMalloc labels");
    check(cudaMalloc(&loss, size_t(N) * sizeof(A)), "cudaMalloc loss");
    check(cudaMalloc(&factor, sizeof(A)), "cudaMalloc factor");
    if (ws_bytes) check(cudaMalloc(&ws, ws_bytes), "cudaMalloc workspace");
    check(cudaMalloc(&flush, kFlushBytes), "cudaMalloc flush buffer");
    check(cudaStreamCreate(&stream), "cudaStreamCreate");
    check(cudaEventCreate(&start), "cudaEventCreate");
    check(cudaEventCreate(&stop), "cudaEventCreate");
    fill_logits<<<init_blocks(N * C), kInitThreads, 0, stream>>>(s, N * C, 1, kLogitScale);
    fill_logits<<<init_blocks(N * C), kInitThreads, 0, stream>>>(t, N * C, 2, kLogitScale);
    fill_labels<<<init_blocks(N), kInitThreads, 0, stream>>>(y, N, C);
    check(cudaStreamSynchronize(stream), "input initialization");
  }
  ~Batch() {
    for (void* p : {(void*)s, (void*)t, (void*)g, (void*)g2, (void*)y, (void*)loss, (void*)factor, ws, flush})
      if (p) cudaFree(p);
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    if (stream) cudaStreamDestroy(stream);
  }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  fusedkd::LogitsView<T, T> logits() const { return {s, C, t, C, N, C}; }
  fusedkd::cuda::DeviceLabels labels() const { return {y, false, -100}; }
  fusedkd::cuda::DeviceOutputs<A, T> outputs() const { return {loss, g, C}; }
  fusedkd::cuda::Workspace workspace() const { return {ws, ws_bytes}; }

  // Times `enqueue` (launches on `stream`) with CUDA events, caches cold, for every iteration.
  template <class F> void time(benchmark::State& state, F&& enqueue) {
    enqueue();  // warm-up (module load, first-touch)
    check(cudaStreamSynchronize(stream), "warm-up");
    for (auto _ : state) {
      check(cudaMemsetAsync(flush, int(state.iterations() & 0xff), kFlushBytes, stream), "L2 flush");
      check(cudaEventRecord(start, stream), "cudaEventRecord");
      enqueue();
      check(cudaEventRecord(stop, stream), "cudaEventRecord");
      check(cudaEventSynchronize(stop), "cudaEventSynchronize");
      float ms = 0;
      check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
      state.SetIterationTime(double(ms) * 1e-3);
    }
    check(cudaGetLastError(), "a launch");
  }
};

// `tensors` [N, C] tensors of T moved per run.
template <class T> void set_counters(benchmark::State& state, int64_t N, int64_t C, int tensors) {
  state.SetBytesProcessed(state.iterations() * int64_t(tensors) * N * C * int64_t(sizeof(T)));
  state.SetItemsProcessed(state.iterations() * N);  // rows
}

enum class Loss { KD, DKD, NKD, RLD, RLDStd, USKD };

template <class T, Loss L> size_t workspace_bytes(int64_t N, int64_t C) {
  namespace cu = fusedkd::cuda;
  if constexpr (L == Loss::KD) return cu::kd_workspace_size<T, T>(N, C);
  if constexpr (L == Loss::DKD) return cu::dkd_workspace_size<T, T>(N, C);
  if constexpr (L == Loss::NKD) return cu::nkd_workspace_size<T, T>(N, C);
  if constexpr (L == Loss::RLD) return cu::rld_workspace_size<T, T>(N, C, false);
  if constexpr (L == Loss::RLDStd) return cu::rld_workspace_size<T, T>(N, C, true);
  if constexpr (L == Loss::USKD) return cu::uskd_workspace_size<T>(N, C);
  return 0;
}

// Loss and ∂loss/∂student (USKD: and ∂loss/∂weak), batchmean: the whole launch sequence.
template <class T, Loss L> void BM_loss(benchmark::State& state) {
  const int64_t N = state.range(0), C = state.range(1);
  Batch<T> b(N, C, workspace_bytes<T, L>(N, C), L == Loss::USKD);
  const auto r = Reduction::BatchMean;
  b.time(state, [&] {
    namespace cu = fusedkd::cuda;
    if constexpr (L == Loss::KD) cu::kd(fusedkd::KDParams{}, b.logits(), r, b.outputs(), b.workspace(), b.stream);
    if constexpr (L == Loss::DKD)
      cu::dkd(fusedkd::DKDParams{}, b.logits(), b.labels(), r, b.outputs(), b.workspace(), b.stream);
    if constexpr (L == Loss::NKD)
      cu::nkd(fusedkd::NKDParams{}, b.logits(), b.labels(), r, b.outputs(), b.workspace(), b.stream);
    if constexpr (L == Loss::RLD || L == Loss::RLDStd) {
      fusedkd::RLDParams p;
      p.logit_standardization = (L == Loss::RLDStd);
      cu::rld(p, b.logits(), b.labels(), r, b.outputs(), b.workspace(), b.stream);
    }
    if constexpr (L == Loss::USKD) {
      const fusedkd::cpu::StudentWeakView<T, T> x{b.s, C, b.t, C, N, C};
      const cu::USKDDeviceOutputs<fusedkd::acc_t<T>, T> out{b.loss, b.g, C, b.g2, C};
      cu::uskd(fusedkd::USKDParams{}, x, b.labels(), r, out, b.workspace(), b.stream);
    }
  });
  set_counters<T>(state, N, C, 3);  // USKD also writes ∂loss/∂weak, not counted (as bench.py)
}

// Top-k teacher KD, ghost tail, k = 64 entries per row at columns (e·37 + i) mod C (distinct for
// C ≥ 64·37 / gcd; the vocabulary shapes); the teacher's log-probabilities all −3 (a tail of 1 − 64e^−3).
// Bytes: read student + write gradient.
template <class T> void BM_topk(benchmark::State& state) {
  using A = fusedkd::acc_t<T>;
  namespace cu = fusedkd::cuda;
  const int64_t N = state.range(0), C = state.range(1), k = 64;
  Batch<T> b(N, C, cu::topk_kd_workspace_size<T>(N), false);
  std::vector<A> lp(size_t(N * k), A(-3));
  std::vector<int64_t> idx(size_t(N * k));
  for (int64_t i = 0; i < N; ++i)
    for (int64_t e = 0; e < k; ++e) idx[size_t(i * k + e)] = (e * 37 + i) % C;
  A* dlp = nullptr;
  int64_t* didx = nullptr;
  check(cudaMalloc(&dlp, lp.size() * sizeof(A)), "cudaMalloc logprobs");
  check(cudaMalloc(&didx, idx.size() * sizeof(int64_t)), "cudaMalloc indices");
  check(cudaMemcpy(dlp, lp.data(), lp.size() * sizeof(A), cudaMemcpyHostToDevice), "logprobs");
  check(cudaMemcpy(didx, idx.data(), idx.size() * sizeof(int64_t), cudaMemcpyHostToDevice), "indices");
  const fusedkd::TopKView<T, A, void> x{b.s, C, dlp, k, nullptr, k, N, C, k};
  const cu::TopKDeviceIndices di{didx, false, k};
  b.time(state, [&] {
    cu::topk_kd<T>(fusedkd::TopKKDParams{}, x, di, b.labels(), Reduction::BatchMean, b.outputs(), b.workspace(),
                   b.stream);
  });
  cudaFree(dlp);
  cudaFree(didx);
  set_counters<T>(state, N, C, 2);
}

// One tensor-parallel rank's shard steps (cuda/shard_launch.cuh) on its [N, C_r] shard of a
// vocabulary of kShardWorld · C_r columns: statistics, (JSD: cross sums,) then loss and gradient,
// with the other ranks' states already in the all-gathered buffer (the collective itself is not
// timed: bench_distributed.py measures it). Bytes as BM_loss: the shard's student, teacher, gradient.
constexpr int kShardWorld = 8;
template <class T, template <class> class LossT> void BM_shard(benchmark::State& state) {
  using A = fusedkd::acc_t<T>;
  using L = LossT<A>;
  using Part = fusedkd::ShardPartial<LossT, A>;
  using Cross = fusedkd::cross_t<L>;
  namespace cu = fusedkd::cuda;
  const int64_t N = state.range(0), C = state.range(1);
  Batch<T> b(N, C, cu::shard_finish_workspace_size<T>(N), false);
  Part* parts = nullptr;
  Cross* cross = nullptr;
  check(cudaMalloc(&parts, size_t(kShardWorld * N) * sizeof(Part)), "cudaMalloc partials");
  check(cudaMalloc(&cross, size_t(kShardWorld * N) * sizeof(Cross)), "cudaMalloc cross");
  const typename L::Params p{};
  auto inputs = [&](int rank) {
    return cu::ShardInputs<T, T>{b.logits(), b.labels(), fusedkd::ShardLayout{rank * C, kShardWorld * C}, nullptr};
  };
  for (int r = 1; r < kShardWorld; ++r) {  // the other ranks' states (here: the same columns at their offsets)
    cu::shard_stats<LossT>(p, inputs(r), parts + r * N, b.stream);
    if constexpr (fusedkd::has_cross_pass<L>::value) cu::shard_cross<LossT>(p, inputs(r), parts, kShardWorld, cross + r * N, b.stream);
  }
  b.time(state, [&] {
    cu::shard_stats<LossT>(p, inputs(0), parts, b.stream);
    if constexpr (fusedkd::has_cross_pass<L>::value) cu::shard_cross<LossT>(p, inputs(0), parts, kShardWorld, cross, b.stream);
    cu::shard_finish<LossT>(p, inputs(0), parts, cross, kShardWorld, Reduction::BatchMean, b.outputs(), b.workspace(),
                            b.stream);
  });
  cudaFree(parts);
  cudaFree(cross);
  set_counters<T>(state, N, C, 3);
}

// The roofline of a fused loss with its gradient: g = s + t.
template <class T> void BM_roofline_add(benchmark::State& state) {
  const int64_t N = state.range(0), C = state.range(1);
  Batch<T> b(N, C, 0, false);
  constexpr int kThreads = 256;
  const int64_t vectors = (N * C) / (16 / int64_t(sizeof(T))) + 1;
  const unsigned blocks = unsigned(std::min<int64_t>((vectors + kThreads - 1) / kThreads, int64_t(1) << 20));
  b.time(state, [&] { add_kernel<T><<<blocks, kThreads, 0, b.stream>>>(b.s, b.t, b.g, N * C); });
  set_counters<T>(state, N, C, 3);
}

// The backward's g ← f · g (fusedkd::scale_grad_): f = 1 (loss.backward(): one launch, nothing
// written) or f = 2 (a loss weight or AMP scale: a read and a write of g).
template <class T> void BM_scale_rows(benchmark::State& state) {
  using A = fusedkd::acc_t<T>;
  const int64_t N = state.range(0), C = state.range(1);
  const A f = A(state.range(2));
  Batch<T> b(N, C, 0, false);
  check(cudaMemcpy(b.factor, &f, sizeof(A), cudaMemcpyHostToDevice), "factor");
  b.time(state, [&] { fusedkd::cuda::scale_rows(b.g, C, N, C, fusedkd::RowFactors<A>{b.factor, 0}, b.stream); });
  set_counters<T>(state, N, C, f == A(1) ? 0 : 2);
}

// The issue's shape matrix: vision N ∈ {128, 1024, 4096} × C ∈ {100, 1000, 21843}, vocabularies
// N ∈ {4096, 16384} × C ∈ {32000, 128256, 151936}.
void vision_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {128, 1024, 4096})
    for (int64_t c : {100, 1000, 21843}) b->Args({n, c});
}
void vocab_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {4096, 16384})
    for (int64_t c : {32000, 128256, 151936}) b->Args({n, c});
}
void all_shapes(benchmark::internal::Benchmark* b) {
  vision_shapes(b);
  vocab_shapes(b);
  b->ArgNames({"N", "C"})->UseManualTime()->Unit(benchmark::kMicrosecond);
}
// USKD ranks by counting (O(C²) per row on the GPU, docs/cuda.md): vision shapes and one vocabulary.
void uskd_shapes(benchmark::internal::Benchmark* b) {
  vision_shapes(b);
  b->Args({4096, 32000});
  b->ArgNames({"N", "C"})->UseManualTime()->Unit(benchmark::kMicrosecond);
}
void scale_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t f : {1, 2}) {
    b->Args({4096, 1000, f});
    b->Args({16384, 128256, f});
  }
  b->ArgNames({"N", "C", "factor"})->UseManualTime()->Unit(benchmark::kMicrosecond);
}

#define FUSEDKD_BENCH(loss, name, shapes)                                             \
  BENCHMARK(BM_loss<float, Loss::loss>)->Name(name "/f32")->Apply(shapes);             \
  BENCHMARK(BM_loss<bf16, Loss::loss>)->Name(name "/bf16")->Apply(shapes)
FUSEDKD_BENCH(KD, "kd", all_shapes);
FUSEDKD_BENCH(DKD, "dkd", all_shapes);
FUSEDKD_BENCH(NKD, "nkd", all_shapes);
FUSEDKD_BENCH(RLD, "rld", all_shapes);
FUSEDKD_BENCH(RLDStd, "rld_std", all_shapes);
FUSEDKD_BENCH(USKD, "uskd", uskd_shapes);
#undef FUSEDKD_BENCH
void topk_shapes(benchmark::internal::Benchmark* b) {
  vocab_shapes(b);
  b->ArgNames({"N", "C"})->UseManualTime()->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_topk<float>)->Name("topk_kd_ghost/f32")->Apply(topk_shapes);
BENCHMARK(BM_topk<bf16>)->Name("topk_kd_ghost/bf16")->Apply(topk_shapes);
BENCHMARK(BM_roofline_add<float>)->Name("roofline_add/f32")->Apply(all_shapes);
BENCHMARK(BM_roofline_add<bf16>)->Name("roofline_add/bf16")->Apply(all_shapes);
// A rank's shard of a vocabulary over kShardWorld ranks: 32000/8, 128256/8, 151936/8 columns.
void shard_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {4096, 16384})
    for (int64_t c : {4000, 16032, 18992}) b->Args({n, c});
  b->ArgNames({"N", "C_rank"})->UseManualTime()->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_shard<float, fusedkd::DKD>)->Name("shard_dkd/f32")->Apply(shard_shapes);
BENCHMARK(BM_shard<bf16, fusedkd::DKD>)->Name("shard_dkd/bf16")->Apply(shard_shapes);
BENCHMARK(BM_shard<bf16, fusedkd::ForwardKL>)->Name("shard_forward_kl/bf16")->Apply(shard_shapes);
BENCHMARK(BM_shard<bf16, fusedkd::JSD>)->Name("shard_jsd/bf16")->Apply(shard_shapes);
BENCHMARK(BM_scale_rows<float>)->Name("scale_rows/f32")->Apply(scale_shapes);
BENCHMARK(BM_scale_rows<bf16>)->Name("scale_rows/bf16")->Apply(scale_shapes);

}  // namespace

int main(int argc, char** argv) {
  bool list_only = false;  // --benchmark_list_tests needs no device
  for (int k = 1; k < argc; ++k) list_only = list_only || std::string(argv[k]).rfind("--benchmark_list_tests", 0) == 0;
  int devices = 0;
  if (!list_only) {
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      std::printf("bench_cuda_executor: no CUDA device, nothing to measure\n");
      return 0;
    }
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    benchmark::AddCustomContext("device", prop.name);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
