// The header-only CUDA API on raw device pointers (no torch): each loss's value and gradient
// for a batch, enqueued on a stream, then checked against the CPU executor. Also the small
// driver that scripts/gpu_check.sh runs under compute-sanitizer.
//
//   nvcc -std=c++17 -arch=native --expt-relaxed-constexpr -I include examples/cuda_raw_pointers.cu -o example
//   ./example [N=256] [C=1000] [loss=all|kd|dkd|nkd|rld|rldstd|uskd]
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <fusedkd/cuda/fusedkd_cuda.cuh>
#include <fusedkd/fusedkd.hpp>

using namespace fusedkd;

#define CHECK(x)                                                                                 \
  do {                                                                                           \
    cudaError_t e_ = (x);                                                                        \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s failed: %s\n", #x, cudaGetErrorString(e_));                      \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

template <class T> T* device_copy(const std::vector<T>& h) {
  T* d = nullptr;
  CHECK(cudaMalloc(&d, h.size() * sizeof(T)));
  CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

// One loss on the GPU and on the CPU; returns whether they agree.
bool run(const std::string& loss, std::int64_t N, std::int64_t C, cudaStream_t stream) {
  // Host data: normal(0, 3) logits, labels with every 10th row ignored.
  std::mt19937 rng(0);
  std::normal_distribution<float> normal(0.f, 3.f);
  std::vector<float> s(size_t(N * C)), t(size_t(N * C));
  std::vector<std::int64_t> y(static_cast<size_t>(N));
  for (auto& v : s) v = normal(rng);
  for (auto& v : t) v = normal(rng);
  for (std::int64_t i = 0; i < N; ++i) y[size_t(i)] = (i % 10 == 9) ? -100 : std::int64_t(rng() % C);

  // Device buffers: inputs, outputs, workspace.
  float* ds = device_copy(s);
  float* dt = device_copy(t);
  std::int64_t* dy = device_copy(y);
  float *dloss, *dgrad, *dgrad_w;
  CHECK(cudaMalloc(&dloss, sizeof(float)));
  CHECK(cudaMalloc(&dgrad, s.size() * sizeof(float)));
  CHECK(cudaMalloc(&dgrad_w, s.size() * sizeof(float)));
  const LogitsView<float, float> x{ds, C, dt, C, N, C};
  const cpu::StudentWeakView<float, float> xw{ds, C, dt, C, N, C};
  const cuda::DeviceLabels labels{dy, false, -100};
  const cuda::DeviceOutputs<float, float> out{dloss, dgrad, C};
  RLDParams rld_std;
  rld_std.logit_standardization = true;

  std::size_t ws_bytes = 0;
  if (loss == "kd") ws_bytes = cuda::kd_workspace_size<float, float>(N, C);
  if (loss == "dkd") ws_bytes = cuda::dkd_workspace_size<float, float>(N, C);
  if (loss == "nkd") ws_bytes = cuda::nkd_workspace_size<float, float>(N, C);
  if (loss == "rld") ws_bytes = cuda::rld_workspace_size<float, float>(N, C, false);
  if (loss == "rldstd") ws_bytes = cuda::rld_workspace_size<float, float>(N, C, true);
  if (loss == "uskd") ws_bytes = cuda::uskd_workspace_size<float>(N, C);
  void* dws = nullptr;
  CHECK(cudaMalloc(&dws, ws_bytes));
  const cuda::Workspace ws{dws, ws_bytes};

  // The loss: enqueued on `stream`; no allocation, no synchronization.
  try {
    if (loss == "kd") cuda::kd(KDParams{}, x, Reduction::BatchMean, out, ws, stream);
    if (loss == "dkd") cuda::dkd(DKDParams{}, x, labels, Reduction::BatchMean, out, ws, stream);
    if (loss == "nkd") cuda::nkd(NKDParams{}, x, labels, Reduction::BatchMean, out, ws, stream);
    if (loss == "rld") cuda::rld(RLDParams{}, x, labels, Reduction::BatchMean, out, ws, stream);
    if (loss == "rldstd") cuda::rld(rld_std, x, labels, Reduction::BatchMean, out, ws, stream);
    if (loss == "uskd")
      cuda::uskd(USKDParams{}, xw, labels, Reduction::BatchMean,
                 cuda::USKDDeviceOutputs<float, float>{dloss, dgrad, C, dgrad_w, C}, ws, stream);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return false;
  }
  float loss_gpu = 0;
  std::vector<float> grad(s.size());
  CHECK(cudaMemcpyAsync(&loss_gpu, dloss, sizeof(float), cudaMemcpyDeviceToHost, stream));
  CHECK(cudaMemcpyAsync(grad.data(), dgrad, grad.size() * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CHECK(cudaStreamSynchronize(stream));

  // The same on the CPU.
  std::vector<float> cpu_grad(s.size()), cpu_grad_w(s.size());
  const LogitsView<float, float> hx{s.data(), C, t.data(), C, N, C};
  const cpu::StudentWeakView<float, float> hxw{s.data(), C, t.data(), C, N, C};
  const LabelsView<std::int64_t> hy{y.data(), -100};
  const RowOutputs<float, float> hout{nullptr, cpu_grad.data(), C};
  float loss_cpu = 0;
  if (loss == "kd") loss_cpu = cpu::kd(KDParams{}, hx, Reduction::BatchMean, hout);
  if (loss == "dkd") loss_cpu = cpu::dkd(DKDParams{}, hx, hy, Reduction::BatchMean, hout);
  if (loss == "nkd") loss_cpu = cpu::nkd(NKDParams{}, hx, hy, Reduction::BatchMean, hout);
  if (loss == "rld") loss_cpu = cpu::rld(RLDParams{}, hx, hy, Reduction::BatchMean, hout);
  if (loss == "rldstd") loss_cpu = cpu::rld(rld_std, hx, hy, Reduction::BatchMean, hout);
  if (loss == "uskd") {
    cpu::USKDOutputs<float, float> o;
    o.grad_student = cpu_grad.data();
    o.grad_student_row_stride = C;
    o.grad_weak = cpu_grad_w.data();
    o.grad_weak_row_stride = C;
    loss_cpu = cpu::uskd(USKDParams{}, hxw, hy, Reduction::BatchMean, o);
  }
  // NaN-aware: a NaN difference counts as a mismatch (std::fmax would drop it).
  double max_diff = 0, max_grad = 0;
  for (size_t k = 0; k < grad.size(); ++k) {
    const double d = std::fabs(double(grad[k]) - cpu_grad[k]);
    max_diff = std::isnan(d) || d > max_diff ? d : max_diff;
    max_grad = std::fmax(max_grad, std::fabs(double(cpu_grad[k])));
  }
  const double grad_tol = (loss == "uskd" ? 2e-4 : 1e-5) * max_grad + 1e-12;
  std::size_t bad = 0;
  for (size_t k = 0; k < grad.size(); ++k) bad += !(std::fabs(double(grad[k]) - cpu_grad[k]) <= grad_tol);
  const bool ok = std::fabs(loss_gpu - loss_cpu) <= 1e-4f * (1.f + std::fabs(loss_cpu)) && bad == 0;
  std::printf("%-6s N=%lld C=%lld: GPU loss %.7g, CPU loss %.7g, max |grad diff| %.3g (max |grad| %.3g), %zu of %zu "
              "gradient entries off %s\n",
              loss.c_str(), (long long)N, (long long)C, loss_gpu, loss_cpu, max_diff, max_grad, bad, grad.size(),
              ok ? "OK" : "MISMATCH");

  cudaFree(ds);
  cudaFree(dt);
  cudaFree(dy);
  cudaFree(dloss);
  cudaFree(dgrad);
  cudaFree(dgrad_w);
  cudaFree(dws);
  return ok;
}

int main(int argc, char** argv) {
  const std::int64_t N = argc > 1 ? std::atoll(argv[1]) : 256;
  const std::int64_t C = argc > 2 ? std::atoll(argv[2]) : 1000;
  const std::string which = argc > 3 ? argv[3] : "all";

  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: nothing to run\n");
    return 0;
  }
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  bool ok = true;
  for (const char* name : {"kd", "dkd", "nkd", "rld", "rldstd", "uskd"})
    if (which == "all" || which == name) ok = run(name, N, C, stream) && ok;
  CHECK(cudaStreamDestroy(stream));
  std::printf(ok ? "OK\n" : "MISMATCH\n");
  return ok ? 0 : 1;
}
