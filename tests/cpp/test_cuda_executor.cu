// The CUDA executor (include/fusedkd/cuda) against the CPU executor, for every loss, several
// student/teacher dtype pairs, every reduction, C from 2 to 128256, N from 1 to 1024, odd row
// strides (scalar path) and aligned ones (16-byte vector path), ±1e4 logits, ignore_index rows,
// int32 labels, out-of-range labels (NaN on the GPU), determinism and CUDA graph capture.
// Skips every test when no CUDA device is present.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <fusedkd/cuda/fusedkd_cuda.cuh>
#include <fusedkd/fusedkd.hpp>

#include "cuda_test_support.hpp"

using namespace fusedkd;
using std::int64_t;
using std::vector;

namespace {

#define CUDA_OK(expr) ASSERT_EQ(cudaSuccess, (expr)) << #expr << ": " << cudaGetErrorString(cudaGetLastError())

// Device buffer (RAII).
struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DevBuf(size_t n) : bytes(n) {
    if (n) EXPECT_EQ(cudaSuccess, cudaMalloc(&p, n));
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  template <class T> T* as() const { return static_cast<T*>(p); }
};

template <class T> void upload(DevBuf& d, const vector<T>& h) {
  ASSERT_EQ(cudaSuccess, cudaMemcpy(d.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
}
template <class T> vector<T> download(const DevBuf& d, size_t n) {
  vector<T> h(n);
  if (n) EXPECT_EQ(cudaSuccess, cudaMemcpy(h.data(), d.p, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

enum class LossId { KD, KDStd, DKD, DKDStd, NKD, RLD, RLDStd, USKD, ReverseKL };
const char* loss_name(LossId id) {
  switch (id) {
    case LossId::KD: return "KD";
    case LossId::KDStd: return "KDstd";
    case LossId::DKD: return "DKD";
    case LossId::DKDStd: return "DKDstd";
    case LossId::NKD: return "NKD";
    case LossId::RLD: return "RLD";
    case LossId::RLDStd: return "RLDstd";
    case LossId::USKD: return "USKD";
    case LossId::ReverseKL: return "ReverseKL";
  }
  return "?";
}
bool uses_labels(LossId id) { return id != LossId::KD && id != LossId::KDStd; }

// The parameters of a case: the defaults, with logit standardization for the *Std cases.
template <class P> P params_for(bool standardized) {
  P p;
  p.logit_standardization = standardized;
  return p;
}

template <class T> double rtol_of() { return 1e-3; }
template <> double rtol_of<double>() { return 1e-9; }
template <> double rtol_of<half_t>() { return 2e-3; }
template <> double rtol_of<bfloat16_t>() { return 1.6e-2; }

// Host batch in the element types, rows `*_stride` apart (padding filled with NaN so that a
// kernel reading it would be caught).
template <class TS, class TT> struct HostBatch {
  int64_t N = 0, C = 0, s_stride = 0, t_stride = 0;
  vector<TS> s;
  vector<TT> t;
  vector<int64_t> y;
  double max_abs = 0;  // largest |logit|
};

enum class DataKind { Normal, Extreme };

template <class TS, class TT>
HostBatch<TS, TT> make_batch(int64_t N, int64_t C, int64_t s_pad, int64_t t_pad, DataKind kind, unsigned seed,
                             bool with_ignored) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 3.0);
  std::uniform_real_distribution<double> uni(-1e4, 1e4);
  HostBatch<TS, TT> b;
  b.N = N;
  b.C = C;
  b.s_stride = C + s_pad;
  b.t_stride = C + t_pad;
  b.s.assign(size_t(std::max<int64_t>(N * b.s_stride, 1)), from_acc<TS>(acc_t<TS>(NAN)));
  b.t.assign(size_t(std::max<int64_t>(N * b.t_stride, 1)), from_acc<TT>(acc_t<TT>(NAN)));
  b.y.resize(size_t(N));
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t j = 0; j < C; ++j) {
      const double sv = kind == DataKind::Extreme ? uni(rng) : normal(rng);
      const double tv = kind == DataKind::Extreme ? uni(rng) : normal(rng);
      b.s[size_t(i * b.s_stride + j)] = from_acc<TS>(acc_t<TS>(sv));
      b.t[size_t(i * b.t_stride + j)] = from_acc<TT>(acc_t<TT>(tv));
      b.max_abs = std::max({b.max_abs, std::fabs(sv), std::fabs(tv)});
    }
    if (kind == DataKind::Extreme) {
      b.s[size_t(i * b.s_stride + int64_t(rng() % uint64_t(C)))] = from_acc<TS>(acc_t<TS>(1e4));
      b.t[size_t(i * b.t_stride + int64_t(rng() % uint64_t(C)))] = from_acc<TT>(acc_t<TT>(-1e4));
      b.max_abs = 1e4;
    }
    b.y[size_t(i)] = int64_t(rng() % uint64_t(C));
    if (with_ignored && N > 1 && i % 4 == 1) b.y[size_t(i)] = -100;
  }
  return b;
}

// Loss and gradients of one evaluation, as doubles.
struct Result {
  vector<double> loss;    // [1] or [N]
  vector<double> grad;    // [N*C] dense (empty when not computed)
  vector<double> grad_w;  // USKD
};

template <class T> vector<double> to_double(const vector<T>& v) {
  vector<double> out(v.size());
  for (size_t k = 0; k < v.size(); ++k) out[k] = double(to_acc(v[k]));
  return out;
}

// CPU executor.
template <class TS, class TT>
Result run_cpu(LossId id, const HostBatch<TS, TT>& b, Reduction r, bool grad) {
  using A = acc_t<TS>;
  const int64_t N = b.N, C = b.C;
  vector<A> row_loss(static_cast<size_t>(N));
  using TG = grad_t<TS>;  // the ops' gradient type, as on the GPU
  vector<TG> g(grad ? size_t(N * C) : 0), gw(grad ? size_t(N * C) : 0);
  const LogitsView<TS, TT> x{b.s.data(), b.s_stride, b.t.data(), b.t_stride, N, C};
  const LabelsView<int64_t> labels{b.y.data(), -100};
  RowOutputs<A, TG> out{row_loss.data(), grad ? g.data() : nullptr, C, A(1)};
  A total = 0;
  switch (id) {
    case LossId::KD:
    case LossId::KDStd: total = cpu::kd(params_for<KDParams>(id == LossId::KDStd), x, r, out); break;
    case LossId::DKD:
    case LossId::DKDStd: total = cpu::dkd(params_for<DKDParams>(id == LossId::DKDStd), x, labels, r, out); break;
    case LossId::NKD: total = cpu::nkd(NKDParams{}, x, labels, r, out); break;
    case LossId::RLD: total = cpu::rld(RLDParams{}, x, labels, r, out); break;
    case LossId::ReverseKL: total = cpu::run_loss<ReverseKL>(TokenKLParams{}, x, labels, r, out); break;
    case LossId::RLDStd: {
      RLDParams p;
      p.logit_standardization = true;
      total = cpu::rld(p, x, labels, r, out);
      break;
    }
    case LossId::USKD: {
      if constexpr (std::is_same<TS, TT>::value) {
        const cpu::StudentWeakView<TS, TT> xw{b.s.data(), b.s_stride, b.t.data(), b.t_stride, N, C};
        cpu::USKDOutputs<A, TG> o;
        o.row_loss = row_loss.data();
        o.grad_student = grad ? g.data() : nullptr;
        o.grad_student_row_stride = C;
        o.grad_weak = grad ? gw.data() : nullptr;
        o.grad_weak_row_stride = C;
        total = cpu::uskd(USKDParams{}, xw, labels, r, o);
      }
      break;
    }
  }
  Result res;
  if (r == Reduction::None)
    for (A v : row_loss) res.loss.push_back(double(v));
  else
    res.loss.push_back(double(total));
  res.grad = to_double(g);
  if (id == LossId::USKD) res.grad_w = to_double(gw);
  return res;
}

// CUDA executor (header-only API) on a stream; optionally through a captured CUDA graph.
template <class TS, class TT>
Result run_gpu(LossId id, const HostBatch<TS, TT>& b, Reduction r, bool grad, bool labels_int32 = false,
               bool via_graph = false, unsigned grad_pad = 0) {
  using A = acc_t<TS>;
  const int64_t N = b.N, C = b.C;
  const int64_t g_stride = C + grad_pad;
  DevBuf ds(b.s.size() * sizeof(TS)), dt(b.t.size() * sizeof(TT));
  upload(ds, b.s);
  upload(dt, b.t);
  DevBuf dy(size_t(std::max<int64_t>(N, 1)) * 8);
  if (labels_int32) {
    vector<int32_t> y32(b.y.begin(), b.y.end());
    if (N) upload(dy, y32);
  } else if (N) {
    upload(dy, b.y);
  }
  const size_t n_loss = r == Reduction::None ? size_t(std::max<int64_t>(N, 1)) : 1;
  DevBuf dloss(n_loss * sizeof(A));
  DevBuf dg(grad ? size_t(std::max<int64_t>(N * g_stride, 1)) * sizeof(grad_t<TS>) : 0);
  DevBuf dgw(grad ? size_t(std::max<int64_t>(N * g_stride, 1)) * sizeof(grad_t<TS>) : 0);
  size_t ws_bytes = 0;
  switch (id) {
    case LossId::KD: ws_bytes = cuda::kd_workspace_size<TS, TT>(N, C); break;
    case LossId::KDStd: ws_bytes = cuda::kd_workspace_size<TS, TT>(N, C, true); break;
    case LossId::DKD: ws_bytes = cuda::dkd_workspace_size<TS, TT>(N, C); break;
    case LossId::DKDStd: ws_bytes = cuda::dkd_workspace_size<TS, TT>(N, C, true); break;
    case LossId::NKD: ws_bytes = cuda::nkd_workspace_size<TS, TT>(N, C); break;
    case LossId::RLD: ws_bytes = cuda::rld_workspace_size<TS, TT>(N, C, false); break;
    case LossId::RLDStd: ws_bytes = cuda::rld_workspace_size<TS, TT>(N, C, true); break;
    case LossId::USKD: ws_bytes = cuda::uskd_workspace_size<TS>(N, C); break;
    case LossId::ReverseKL: ws_bytes = cuda::row_local_workspace_size<ReverseKL, TS, TT>(N, C); break;
  }
  DevBuf dws(ws_bytes);
  cudaStream_t stream;
  EXPECT_EQ(cudaSuccess, cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const LogitsView<TS, TT> x{ds.as<TS>(), b.s_stride, dt.as<TT>(), b.t_stride, N, C};
  const cuda::DeviceLabels labels{dy.p, labels_int32, -100};
  using TG = grad_t<TS>;
  const cuda::DeviceOutputs<A, TG> out{dloss.as<A>(), grad ? dg.as<TG>() : nullptr, g_stride};
  const cuda::Workspace ws{dws.p, ws_bytes};
  auto launch = [&] {
    switch (id) {
      case LossId::KD:
      case LossId::KDStd: cuda::kd(params_for<KDParams>(id == LossId::KDStd), x, r, out, ws, stream); break;
      case LossId::DKD:
      case LossId::DKDStd: cuda::dkd(params_for<DKDParams>(id == LossId::DKDStd), x, labels, r, out, ws, stream); break;
      case LossId::NKD: cuda::nkd(NKDParams{}, x, labels, r, out, ws, stream); break;
      case LossId::RLD: cuda::rld(RLDParams{}, x, labels, r, out, ws, stream); break;
      case LossId::ReverseKL: cuda::launch_loss<ReverseKL>(TokenKLParams{}, x, labels, r, out, ws, stream); break;
      case LossId::RLDStd: {
        RLDParams p;
        p.logit_standardization = true;
        cuda::rld(p, x, labels, r, out, ws, stream);
        break;
      }
      case LossId::USKD: {
        if constexpr (std::is_same<TS, TT>::value) {
          const cpu::StudentWeakView<TS, TT> xw{ds.as<TS>(), b.s_stride, dt.as<TT>(), b.t_stride, N, C};
          const cuda::USKDDeviceOutputs<A, TG> o{dloss.as<A>(), grad ? dg.as<TG>() : nullptr, g_stride,
                                                 grad ? dgw.as<TG>() : nullptr, g_stride};
          cuda::uskd(USKDParams{}, xw, labels, r, o, ws, stream);
        }
        break;
      }
    }
  };
  if (via_graph) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    EXPECT_EQ(cudaSuccess, cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    launch();
    EXPECT_EQ(cudaSuccess, cudaStreamEndCapture(stream, &graph));
    EXPECT_EQ(cudaSuccess, cudaGraphInstantiate(&exec, graph, 0));
    EXPECT_EQ(cudaSuccess, cudaGraphLaunch(exec, stream));
    EXPECT_EQ(cudaSuccess, cudaGraphLaunch(exec, stream));  // replays are idempotent
    EXPECT_EQ(cudaSuccess, cudaStreamSynchronize(stream));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  } else {
    launch();
    EXPECT_EQ(cudaSuccess, cudaStreamSynchronize(stream));
  }
  EXPECT_EQ(cudaSuccess, cudaGetLastError());
  cudaStreamDestroy(stream);
  Result res;
  res.loss = to_double(download<A>(dloss, r == Reduction::None ? size_t(N) : 1));
  if (grad) {
    auto strip = [&](const DevBuf& d) {
      const vector<TG> full = download<TG>(d, size_t(N * g_stride));
      vector<double> out(size_t(N * C));
      for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < C; ++j) out[size_t(i * C + j)] = double(to_acc(full[size_t(i * g_stride + j)]));
      return out;
    };
    res.grad = strip(dg);
    if (id == LossId::USKD) res.grad_w = strip(dgw);
  }
  return res;
}

// |gpu − cpu| ≤ atol + rtol·|cpu| elementwise; atol scales with the largest reference value.
::testing::AssertionResult close(const vector<double>& gpu, const vector<double>& cpu, double rtol, double atol_rel,
                                 double atol_abs, const char* what) {
  if (gpu.size() != cpu.size())
    return ::testing::AssertionFailure() << what << ": size " << gpu.size() << " vs " << cpu.size();
  double gmax = 0;
  for (double v : cpu) gmax = std::max(gmax, std::fabs(v));
  const double atol = atol_abs + atol_rel * gmax;
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t k = 0; k < cpu.size(); ++k) {
    const double d = std::fabs(gpu[k] - cpu[k]);
    if (!(d <= atol + rtol * std::fabs(cpu[k]))) {
      if (!bad) first = k;
      ++bad;
      worst = std::max(worst, std::isnan(d) ? INFINITY : d);
    }
  }
  if (!bad) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << cpu.size() << " differ; first at " << first
                                       << ": gpu " << gpu[first] << " cpu " << cpu[first] << " (atol " << atol
                                       << ", rtol " << rtol << ", worst |diff| " << worst << ")";
}

template <class TS, class TT>
void compare_all_reductions(LossId id, int64_t N, int64_t C, int64_t s_pad, int64_t t_pad, DataKind kind,
                            unsigned seed) {
  const auto b = make_batch<TS, TT>(N, C, s_pad, t_pad, kind, seed, uses_labels(id));
  // fp32 at |logits| ~ 1e4: lse = m + log z rounds at ulp(1e4) ≈ 1e-3, so p of the top class
  // may differ by that much relatively between two summation orders.
  const double rtol = std::max({rtol_of<TS>(), rtol_of<TT>(), kind == DataKind::Extreme ? 4e-3 : 0.0});
  // fp16 gradients of batchmean over many rows are subnormal: allow one subnormal step (2^-24).
  const double g_floor = std::is_same<TS, half_t>::value ? 6.0e-8 : 0.0;
  const bool f64 = std::is_same<TS, double>::value;
  for (Reduction r : {Reduction::BatchMean, Reduction::Sum, Reduction::None}) {
    SCOPED_TRACE(std::string("reduction ") + (r == Reduction::None ? "none" : r == Reduction::Sum ? "sum" : "batchmean"));
    const Result cpu = run_cpu(id, b, r, true);
    const Result gpu = run_gpu(id, b, r, true);
    // Loss: summation orders differ; the error scales with the lse's (|logit|/τ) times τ².
    const double rows = r == Reduction::Sum ? double(std::max<int64_t>(N, 1)) : 1.0;
    const double loss_atol = (f64 ? 1e-11 : 2e-5) * 16.0 * std::max(1.0, b.max_abs) * rows;
    EXPECT_TRUE(close(gpu.loss, cpu.loss, f64 ? 1e-10 : 1e-4, 0, loss_atol, "loss"));
    const double g_atol = id == LossId::USKD ? 2e-4 : (f64 ? 1e-10 : 3e-5);
    EXPECT_TRUE(close(gpu.grad, cpu.grad, rtol, g_atol, g_floor, "grad_student"));
    if (id == LossId::USKD) EXPECT_TRUE(close(gpu.grad_w, cpu.grad_w, rtol, g_atol, g_floor, "grad_weak"));
  }
}

// ----------------------------------------------------------------------------- the grid

struct GridCase {
  LossId loss;
  int pair;  // index into the dtype pairs below
  int64_t C, N;
};

// (student, teacher): f32/f32, f16/f16, bf16/bf16, f32/bf16, bf16/f32, f64/f64
constexpr const char* kPairNames[] = {"f32_f32", "f16_f16", "bf16_bf16", "f32_bf16", "bf16_f32", "f64_f64"};

// FUSEDKD_TEST_FEW_PAIRS (the sanitized emulation build, whose compile time grows with every
// instantiation): only the pairs with distinct vector widths and a mixed pair (f32: 4 columns per
// 16-byte vector, bf16: 8, f32/bf16); the grid keeps only those cases.
#if defined(FUSEDKD_TEST_FEW_PAIRS)
constexpr bool pair_built(int pair) { return pair == 0 || pair == 2 || pair == 3; }
using RowStrideType = bfloat16_t;
#else
constexpr bool pair_built(int) { return true; }
using RowStrideType = half_t;
#endif

template <class F> void with_pair(int pair, F&& f) {
  switch (pair) {
    case 0: return f(float{}, float{});
    case 2: return f(bfloat16_t{}, bfloat16_t{});
    case 3: return f(float{}, bfloat16_t{});
#if !defined(FUSEDKD_TEST_FEW_PAIRS)
    case 1: return f(half_t{}, half_t{});
    case 4: return f(bfloat16_t{}, float{});
    case 5: return f(double{}, double{});
#endif
    default: FAIL() << "dtype pair " << pair << " is not built in this configuration";
  }
}

// The emulation build (FUSEDKD_SIMT) runs the grid but for what would take long serially on the host:
// USKD rows whose O(C²) ranking exceeds ~5·10⁸ comparisons per case (C > 4096; C = 4096 with N > 3;
// C ≈ 1000 with N = 1024), and batches of more than 2²² elements for all but the f32/f32 pair
// (C = 4096 with N = 1024, C = 128256 with N = 64), so that CI's emulated suite stays within
// minutes on 2 cores. FUSEDKD_SIMT_FULL_GRID=1 runs every case.
bool in_emulated_subset(const GridCase& c) {
#if defined(FUSEDKD_SIMT)
  const char* full = std::getenv("FUSEDKD_SIMT_FULL_GRID");
  if (full != nullptr && full[0] == '1') return true;
  constexpr double kMaxRankComparisons = 5e8;
  constexpr double kMaxElements = double(1 << 22);
  const double C = double(c.C), N = double(c.N);
  if (c.loss == LossId::USKD) return C * C * N <= kMaxRankComparisons;
  return c.pair == 0 || C * N <= kMaxElements;
#else
  (void)c;
  return true;
#endif
}

// Columns for a targeted test of `id`: USKD's ranking is O(C²) per row, which the emulator runs
// serially, so the emulation build caps USKD at 4096 columns there (the GPU runs the given C).
int64_t cols_for(LossId id, int64_t C) {
#if defined(FUSEDKD_SIMT)
  const char* full = std::getenv("FUSEDKD_SIMT_FULL_GRID");
  if (id == LossId::USKD && !(full != nullptr && full[0] == '1')) return std::min<int64_t>(C, 4096);
#else
  (void)id;
#endif
  return C;
}

vector<GridCase> grid() {
  vector<GridCase> cases;
  const LossId losses[] = {LossId::KD,  LossId::KDStd, LossId::DKD,    LossId::DKDStd,   LossId::NKD,
                           LossId::RLD, LossId::RLDStd, LossId::USKD, LossId::ReverseKL};
  const int64_t small_C[] = {2, 7, 100, 1000, 1001, 4096};
  const int64_t big_C[] = {32000, 50257, 128256};
  for (LossId l : losses) {
    for (int pair = 0; pair < 6; ++pair) {
      if (l == LossId::USKD && (pair == 3 || pair == 4)) continue;  // USKD: one dtype for student and weak
      for (int64_t C : small_C)
        for (int64_t N : {1, 3, 64, 1024}) cases.push_back({l, pair, C, N});
      if (pair == 0 || pair == 2 || pair == 4 || (l == LossId::USKD && pair == 1))
        for (int64_t C : big_C)
          for (int64_t N : {1, 3, 64}) {
            if (l == LossId::USKD && N > 3) continue;  // O(C²) ranking: keep the biggest rows few
            cases.push_back({l, pair, C, N});
          }
    }
  }
  vector<GridCase> selected;
  for (const GridCase& c : cases)
    if (pair_built(c.pair) && in_emulated_subset(c)) selected.push_back(c);
  return selected;
}

class CudaVsCpu : public ::testing::TestWithParam<GridCase> {};

TEST_P(CudaVsCpu, LossAndGradientsMatch) {
  SKIP_WITHOUT_GPU();
  const GridCase c = GetParam();
  // N = 3 rows use odd row strides (scalar path); the others contiguous rows (vector path where
  // C keeps rows 16-byte aligned).
  const int64_t s_pad = c.N == 3 ? 3 : 0, t_pad = c.N == 3 ? 1 : 0;
  with_pair(c.pair, [&](auto s, auto t) {
    using TS = decltype(s);
    using TT = decltype(t);
    compare_all_reductions<TS, TT>(c.loss, c.N, c.C, s_pad, t_pad, DataKind::Normal, unsigned(c.C * 7919 + c.N));
  });
}

INSTANTIATE_TEST_SUITE_P(Grid, CudaVsCpu, ::testing::ValuesIn(grid()), [](const auto& info) {
  const GridCase& c = info.param;
  std::ostringstream os;
  os << loss_name(c.loss) << "_" << kPairNames[c.pair] << "_C" << c.C << "_N" << c.N;
  return os.str();
});

// ----------------------------------------------------------------------------- targeted tests

class CudaLoss : public ::testing::TestWithParam<LossId> {};

TEST_P(CudaLoss, ExtremeLogits) {
  SKIP_WITHOUT_GPU();
  for (int64_t C0 : {100, 6000, 50257}) {  // Group, Block (512 threads), Split
    const int64_t C = cols_for(GetParam(), C0);
    SCOPED_TRACE("C = " + std::to_string(C));
    compare_all_reductions<float, float>(GetParam(), 8, C, 0, 0, DataKind::Extreme, 11);
    compare_all_reductions<bfloat16_t, bfloat16_t>(GetParam(), 8, C, 1, 0, DataKind::Extreme, 12);
  }
}

TEST_P(CudaLoss, Int32LabelsAndGraphCaptureAndDeterminism) {
  SKIP_WITHOUT_GPU();
  const LossId id = GetParam();
  for (int64_t C0 : {10, 3000, 40000}) {
    const int64_t C = cols_for(GetParam(), C0);
    SCOPED_TRACE("C = " + std::to_string(C));
    const auto b = make_batch<float, float>(37, C, 0, 0, DataKind::Normal, 5, uses_labels(id));
    const Result a = run_gpu(id, b, Reduction::BatchMean, true);
    const Result a32 = run_gpu(id, b, Reduction::BatchMean, true, /*labels_int32=*/true);
#if defined(FUSEDKD_SIMT)
    const Result g = a;  // graph capture is not emulated (cudaErrorNotSupported): checked on a GPU only
#else
    const Result g = run_gpu(id, b, Reduction::BatchMean, true, false, /*via_graph=*/true);
#endif
    const Result again = run_gpu(id, b, Reduction::BatchMean, true);
    // Bit-identical: same plan, fixed reduction trees.
    EXPECT_EQ(0, std::memcmp(a.loss.data(), again.loss.data(), a.loss.size() * sizeof(double)));
    EXPECT_EQ(a.grad, again.grad);
    EXPECT_EQ(a.loss, a32.loss);
    EXPECT_EQ(a.grad, a32.grad);
    EXPECT_EQ(a.loss, g.loss);
    EXPECT_EQ(a.grad, g.grad);
  }
}

TEST_P(CudaLoss, GradientRowStride) {
  SKIP_WITHOUT_GPU();
  const LossId id = GetParam();
  const auto b = make_batch<RowStrideType, RowStrideType>(5, 300, 0, 0, DataKind::Normal, 9, uses_labels(id));
  const Result cpu = run_cpu(id, b, Reduction::Sum, true);
  const Result gpu = run_gpu(id, b, Reduction::Sum, true, false, false, /*grad_pad=*/5);
  EXPECT_TRUE(close(gpu.grad, cpu.grad, rtol_of<RowStrideType>(), id == LossId::USKD ? 2e-4 : 3e-5, 6.0e-8,
                    "grad_student"));
}

TEST_P(CudaLoss, AllRowsIgnored) {
  SKIP_WITHOUT_GPU();
  const LossId id = GetParam();
  if (!uses_labels(id)) GTEST_SKIP() << "KD takes no labels";
  for (int64_t C0 : {10, 3000, 40000}) {
    const int64_t C = cols_for(GetParam(), C0);
    auto b = make_batch<float, float>(4, C, 0, 0, DataKind::Normal, 3, false);
    for (auto& y : b.y) y = -100;
    const Result g = run_gpu(id, b, Reduction::BatchMean, true);
    EXPECT_EQ(g.loss, vector<double>{0.0});
    for (double v : g.grad) ASSERT_EQ(v, 0.0);
    const Result n = run_gpu(id, b, Reduction::None, true);
    for (double v : n.loss) EXPECT_EQ(v, 0.0);
  }
}

TEST_P(CudaLoss, OutOfRangeLabelGivesNaN) {
  SKIP_WITHOUT_GPU();
  const LossId id = GetParam();
  if (!uses_labels(id)) GTEST_SKIP() << "KD takes no labels";
  for (int64_t C0 : {10, 3000, 40000}) {
    const int64_t C = cols_for(GetParam(), C0);
    SCOPED_TRACE("C = " + std::to_string(C));
    auto b = make_batch<float, float>(4, C, 0, 0, DataKind::Normal, 4, false);
    b.y[2] = C;  // out of range, not ignore_index
    b.y[3] = -7;
    const Result none = run_gpu(id, b, Reduction::None, true);
    if (id != LossId::USKD) EXPECT_FALSE(std::isnan(none.loss[0]));  // USKD: NaN spreads through mean u
    EXPECT_TRUE(std::isnan(none.loss[2]));
    EXPECT_TRUE(std::isnan(none.loss[3]));
    for (int64_t j = 0; j < C; ++j) ASSERT_TRUE(std::isnan(none.grad[size_t(2 * C + j)]));
    const Result mean = run_gpu(id, b, Reduction::BatchMean, true);
    EXPECT_TRUE(std::isnan(mean.loss[0]));
  }
}

TEST_P(CudaLoss, EmptyBatch) {
  SKIP_WITHOUT_GPU();
  const auto b = make_batch<float, float>(0, 10, 0, 0, DataKind::Normal, 1, false);
  EXPECT_EQ(run_gpu(GetParam(), b, Reduction::BatchMean, true).loss, vector<double>{0.0});
  EXPECT_EQ(run_gpu(GetParam(), b, Reduction::Sum, true).loss, vector<double>{0.0});
}

#if defined(FUSEDKD_SIMT)
// Emulation only: the same launches under two thread/block schedules (simt.hpp) give bit-identical
// losses and gradients on every plan (Group, Block, Split). A race on shared or global memory, or
// a reduction whose order depends on scheduling, makes them differ.
TEST_P(CudaLoss, ScheduleIndependentBitForBit) {
  const LossId id = GetParam();
  for (int64_t C0 : {100, 3000, 20000}) {
    const int64_t C = cols_for(GetParam(), C0);
    SCOPED_TRACE("C = " + std::to_string(C));
    const int64_t N = id == LossId::USKD && C > 4096 ? 2 : 9;
    const auto b = make_batch<float, float>(N, C, 0, 0, DataKind::Normal, 21, uses_labels(id));
    const auto bh = make_batch<bfloat16_t, bfloat16_t>(N, C, 1, 0, DataKind::Normal, 22, uses_labels(id));
    vector<Result> runs, runs_h;
    for (std::uint64_t seed : {std::uint64_t(0), std::uint64_t(0x5eed)}) {
      simt::set_schedule_seed(seed);
      runs.push_back(run_gpu(id, b, Reduction::BatchMean, true));
      runs_h.push_back(run_gpu(id, bh, Reduction::None, true));
    }
    simt::set_schedule_seed(0);
    // Same bits (NaN included), element for element.
    auto same_bits = [](const vector<double>& x, const vector<double>& z) {
      return x.size() == z.size() && (x.empty() || std::memcmp(x.data(), z.data(), x.size() * sizeof(double)) == 0);
    };
    for (const auto* r : {&runs, &runs_h}) {
      const Result &a = (*r)[0], &c = (*r)[1];
      EXPECT_TRUE(same_bits(a.loss, c.loss));
      EXPECT_TRUE(same_bits(a.grad, c.grad));
      EXPECT_TRUE(same_bits(a.grad_w, c.grad_w));
    }
  }
}
#endif

INSTANTIATE_TEST_SUITE_P(Losses, CudaLoss,
                         ::testing::Values(LossId::KD, LossId::KDStd, LossId::DKD, LossId::DKDStd, LossId::NKD,
                                           LossId::RLD, LossId::RLDStd, LossId::USKD, LossId::ReverseKL),
                         [](const auto& info) { return std::string(loss_name(info.param)); });

// Errors are reported on the host before anything is enqueued (these need no GPU).
// Every row-local loss of the registry with its default parameters, on the Group, Block and Split
// plans, against the CPU executor: a new loss is covered here without an edit (the grid above and
// the Losses suite list their cases by hand).
template <template <class> class Loss>
void registry_loss_matches_cpu(const char* name, const typename Loss<float>::Params& params = {}) {
  for (int64_t C : {int64_t(100), int64_t(3000), int64_t(20000)}) {
    SCOPED_TRACE(std::string(name) + " C " + std::to_string(C));
    const int64_t N = 5;
    const auto b = make_batch<float, float>(N, C, 0, 0, DataKind::Normal, unsigned(C + 3), true);
    vector<float> row_loss(static_cast<size_t>(N)), g(static_cast<size_t>(N * C));
    const LogitsView<float, float> x{b.s.data(), C, b.t.data(), C, N, C};
    const LabelsView<int64_t> labels{b.y.data(), -100};
    const float cpu_loss = cpu::run_loss<Loss>(params, x, labels, Reduction::BatchMean,
                                               RowOutputs<float, float>{row_loss.data(), g.data(), C});
    DevBuf ds(b.s.size() * 4), dt(b.t.size() * 4), dy(size_t(N) * 8), dloss(4), dg(size_t(N * C) * 4);
    upload(ds, b.s);
    upload(dt, b.t);
    upload(dy, b.y);
    const size_t ws_bytes = cuda::row_local_workspace_size<Loss, float, float>(N, C, standardizes(params));
    DevBuf dws(ws_bytes);
    const LogitsView<float, float> xd{ds.as<float>(), C, dt.as<float>(), C, N, C};
    cuda::launch_loss<Loss>(params, xd, cuda::DeviceLabels{dy.p, false, -100}, Reduction::BatchMean,
                            cuda::DeviceOutputs<float, float>{dloss.as<float>(), dg.as<float>(), C},
                            cuda::Workspace{dws.p, ws_bytes}, nullptr);
    CUDA_OK(cudaDeviceSynchronize());
    const vector<float> gpu_loss = download<float>(dloss, 1), gpu_g = download<float>(dg, size_t(N * C));
    EXPECT_TRUE(close({double(gpu_loss[0])}, {double(cpu_loss)}, 1e-4, 0, 1e-5, "loss"));
    EXPECT_TRUE(close(to_double(gpu_g), to_double(g), 1e-3, 3e-5, 0, "grad_student"));
  }
}

#define FUSEDKD_REGISTRY_CUDA_TEST(L)                               \
  TEST(Registry, L##MatchesTheCpuExecutorOnEveryPlan) {             \
    SKIP_WITHOUT_GPU();                                             \
    registry_loss_matches_cpu<L>(#L);                               \
  }
FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_REGISTRY_CUDA_TEST)
#undef FUSEDKD_REGISTRY_CUDA_TEST

// The token losses with a softcap, a temperature and τ², and JSD at its two ends (the forward / reverse
// KL branches inside the JSD op) and near them, on every plan (the cross pass of Group, Block and Split).
TEST(Registry, TokenLossVariantsMatchTheCpuExecutorOnEveryPlan) {
  SKIP_WITHOUT_GPU();
  registry_loss_matches_cpu<ForwardKL>("ForwardKL tau2 cap", TokenKLParams{2.0, true, 5.0});
  registry_loss_matches_cpu<ReverseKL>("ReverseKL cap", TokenKLParams{0.5, false, 3.0});
  for (double beta : {0.0, 0.1, 0.9, 1.0})
    registry_loss_matches_cpu<JSD>("JSD", JSDParams{beta, 2.0, false, 4.0});
  registry_loss_matches_cpu<JSD>("JSD tau2", JSDParams{0.5, 0.5, true, 0.0});
  registry_loss_matches_cpu<TVD>("TVD cap", TVDParams{0.5, 3.0});
}

TEST(CudaHostChecks, TooSmallWorkspaceThrows) {
  const LogitsView<float, float> x{reinterpret_cast<const float*>(256), 10, reinterpret_cast<const float*>(512), 10, 4, 10};
  const cuda::DeviceOutputs<float, float> out{reinterpret_cast<float*>(1024), nullptr, 0};
  const size_t need = cuda::kd_workspace_size<float, float>(4, 10);
  EXPECT_THROW(cuda::kd(KDParams{}, x, Reduction::Sum, out, cuda::Workspace{reinterpret_cast<void*>(4096), need - 1}, nullptr),
               Error);
  EXPECT_THROW(cuda::kd(KDParams{}, x, Reduction::Sum, out, cuda::Workspace{nullptr, need}, nullptr), Error);
}

TEST(CudaHostChecks, BadArgumentsThrow) {
  const LogitsView<float, float> x{reinterpret_cast<const float*>(256), 10, reinterpret_cast<const float*>(512), 10, 4, 10};
  const cuda::DeviceOutputs<float, float> out{reinterpret_cast<float*>(1024), nullptr, 0};
  const cuda::Workspace ws{reinterpret_cast<void*>(4096), size_t(1) << 20};
  KDParams bad;
  bad.temperature = 0;
  EXPECT_THROW(cuda::kd(bad, x, Reduction::Sum, out, ws, nullptr), Error);
  EXPECT_THROW(cuda::dkd(DKDParams{}, x, cuda::DeviceLabels{}, Reduction::Sum, out, ws, nullptr), Error);  // no labels
  LogitsView<float, float> one = x;
  one.cols = 1;
  EXPECT_THROW(cuda::dkd(DKDParams{}, one, cuda::DeviceLabels{reinterpret_cast<void*>(8192)}, Reduction::Sum, out, ws,
                         nullptr),
               Error);  // C = 1
  cuda::DeviceOutputs<float, float> no_loss = out;
  no_loss.loss = nullptr;
  EXPECT_THROW(cuda::kd(KDParams{}, x, Reduction::Sum, no_loss, ws, nullptr), Error);
}

}  // namespace

namespace {

// cuda::scale_rows against cpu::scale_rows, bit for bit: scalar and per-row factors (some rows at
// exactly 1, which must not be rewritten), row strides with padding, C from 2 to 128256.
template <class T> void check_scale_rows_matches_cpu(int64_t N, int64_t C) {
  using A = acc_t<T>;
  const int64_t stride = C + 3;
  std::mt19937 rng(unsigned(N * 7 + C));
  std::normal_distribution<double> normal(0.0, 2.0);
  vector<T> g0(static_cast<size_t>(N * stride));
  for (auto& v : g0) v = from_acc<T>(A(normal(rng)));
  vector<A> per_row(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) per_row[size_t(i)] = i % 3 == 0 ? A(1) : A(normal(rng));
  DevBuf dg(g0.size() * sizeof(T)), df(per_row.size() * sizeof(A));
  upload(df, per_row);
  for (int64_t factor_stride : {int64_t(0), int64_t(1)}) {
    for (A scalar : {A(1), A(0.25), A(-3)}) {
      const vector<A>& host_factors = per_row;
      vector<A> one = {scalar};
      DevBuf d_one(sizeof(A));
      upload(d_one, one);
      const RowFactors<A> f_dev{factor_stride == 0 ? d_one.as<A>() : df.as<A>(), factor_stride};
      const RowFactors<A> f_host{factor_stride == 0 ? one.data() : host_factors.data(), factor_stride};
      upload(dg, g0);
      cuda::scale_rows(dg.as<T>(), stride, N, C, f_dev, nullptr);
      CUDA_OK(cudaDeviceSynchronize());
      vector<T> want = g0;
      cpu::scale_rows(want.data(), stride, C, f_host, 0, N);
      const vector<T> got = download<T>(dg, g0.size());
      ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(T)))
          << "N " << N << " C " << C << " factor stride " << factor_stride << " scalar " << double(scalar);
      if (factor_stride == 1) break;  // the scalar does not matter then
    }
  }
}

TEST(CudaScaleRows, MatchesCpuBitForBit) {
  SKIP_WITHOUT_GPU();
  for (auto [N, C] : {std::pair<int64_t, int64_t>{1, 2}, {3, 7}, {1024, 100}, {33, 1001}, {5, 4096}, {2, 128256}}) {
    check_scale_rows_matches_cpu<float>(N, C);
    check_scale_rows_matches_cpu<double>(N, C);
    check_scale_rows_matches_cpu<half_t>(N, C);
    check_scale_rows_matches_cpu<bfloat16_t>(N, C);
  }
}

TEST(CudaHostChecks, ScaleRowsBadArgumentsThrow) {
  float f = 2;
  EXPECT_THROW(cuda::scale_rows(reinterpret_cast<float*>(256), 4, 3, 5, RowFactors<float>{&f, 0}, nullptr), Error);
  EXPECT_THROW(cuda::scale_rows(reinterpret_cast<float*>(256), 5, 3, 5, RowFactors<float>{&f, -1}, nullptr), Error);
  float* null_grad = nullptr;
  EXPECT_THROW(cuda::scale_rows(null_grad, 5, 3, 5, RowFactors<float>{&f, 0}, nullptr), Error);
}

}  // namespace
