// Google Benchmark of the header-only CPU executor (single thread): every loss (the token losses
// through the registry's run_loss), fp32 and bf16,
// vision and vocabulary shapes; and the backward's gradient scaling (scale_rows). Reports bytes moved as read student + read teacher (or weak) +
// write gradient, once each, so bytes_per_second is the effective bandwidth.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <fusedkd/fusedkd.hpp>

namespace {

using fusedkd::Reduction;
// Run: build/skbuild/benchmarks/bench_cpu_executor --benchmark_min_time=0.2
//      (--benchmark_filter='kd/' for one loss; --benchmark_format=csv for a table)

template <class T> struct Inputs {
  std::int64_t N, C;
  std::vector<T> s, t, g, g2;
  std::vector<std::int64_t> y;
  std::vector<fusedkd::acc_t<T>> loss;

  Inputs(std::int64_t n, std::int64_t c) : N(n), C(c), s(n * c), t(n * c), g(n * c), g2(n * c), y(n), loss(n) {
    std::mt19937 rng(0);
    std::normal_distribution<float> normal(0.f, 3.f);
    for (auto& v : s) v = fusedkd::from_acc<T>(normal(rng));
    for (auto& v : t) v = fusedkd::from_acc<T>(normal(rng));
    std::uniform_int_distribution<std::int64_t> label(0, c - 1);
    for (auto& v : y) v = label(rng);
  }
  fusedkd::LogitsView<T> logits() const { return {s.data(), C, t.data(), C, N, C}; }
  fusedkd::LabelsView<std::int64_t> labels() const { return {y.data(), -100}; }
  fusedkd::RowOutputs<fusedkd::acc_t<T>, T> outputs() { return {loss.data(), g.data(), C}; }
};

// Bytes moved: read student + read teacher (USKD: weak logits) + write the student gradient, once
// each (USKD also writes the weak gradient, not counted, as in benchmarks/bench.py).
template <class T> void set_counters(benchmark::State& state, const Inputs<T>& in) {
  const std::int64_t bytes = 3 * in.N * in.C * std::int64_t(sizeof(T));
  state.SetBytesProcessed(state.iterations() * bytes);
  state.SetItemsProcessed(state.iterations() * in.N);  // rows
}

enum class Loss { KD, DKD, NKD, RLD, RLDStd, USKD };

template <class T, Loss L> void BM_loss(benchmark::State& state) {
  Inputs<T> in(state.range(0), state.range(1));
  for (auto _ : state) {
    fusedkd::acc_t<T> v{};
    if constexpr (L == Loss::KD) v = fusedkd::cpu::kd(fusedkd::KDParams{}, in.logits(), Reduction::BatchMean, in.outputs());
    if constexpr (L == Loss::DKD)
      v = fusedkd::cpu::dkd(fusedkd::DKDParams{}, in.logits(), in.labels(), Reduction::BatchMean, in.outputs());
    if constexpr (L == Loss::NKD)
      v = fusedkd::cpu::nkd(fusedkd::NKDParams{}, in.logits(), in.labels(), Reduction::BatchMean, in.outputs());
    if constexpr (L == Loss::RLD || L == Loss::RLDStd) {
      fusedkd::RLDParams p;
      p.logit_standardization = (L == Loss::RLDStd);
      v = fusedkd::cpu::rld(p, in.logits(), in.labels(), Reduction::BatchMean, in.outputs());
    }
    if constexpr (L == Loss::USKD) {
      fusedkd::cpu::StudentWeakView<T, T> x{in.s.data(), in.C, in.t.data(), in.C, in.N, in.C};
      fusedkd::cpu::USKDOutputs<fusedkd::acc_t<T>, T> out;
      out.row_loss = in.loss.data();
      out.grad_student = in.g.data();
      out.grad_student_row_stride = in.C;
      out.grad_weak = in.g2.data();
      out.grad_weak_row_stride = in.C;
      v = fusedkd::cpu::uskd(fusedkd::USKDParams{}, x, in.labels(), Reduction::BatchMean, out);
    }
    benchmark::DoNotOptimize(v);
    benchmark::ClobberMemory();
  }
  set_counters(state, in);
}

// The backward's in-place g ← f · g (cpu::scale_rows, fusedkd::scale_grad_ on the CPU) with f = 2
// (a loss weight): a read and a write of the gradient.
template <class T> void BM_scale_rows(benchmark::State& state) {
  Inputs<T> in(state.range(0), state.range(1));
  const fusedkd::acc_t<T> two = 2;
  for (auto _ : state) {
    fusedkd::cpu::scale_rows(in.s.data(), in.C, in.C, fusedkd::RowFactors<fusedkd::acc_t<T>>{&two, 0}, 0, in.N);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * in.N * in.C * std::int64_t(sizeof(T)));
  state.SetItemsProcessed(state.iterations() * in.N);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (std::int64_t n : {128, 1024})
    for (std::int64_t c : {100, 1000}) b->Args({n, c});
  b->Args({256, 32000});  // a vocabulary-sized row
  b->ArgNames({"N", "C"})->Unit(benchmark::kMicrosecond);
}

using bf16 = fusedkd::bfloat16_t;
// Every CPU entry point of include/fusedkd/cpu/losses.hpp (kd, dkd, nkd, rld, uskd), fp32 and bf16.
#define FUSEDKD_BENCH(loss, name)                                                       \
  BENCHMARK(BM_loss<float, Loss::loss>)->Name(name "/f32")->Apply(shapes);               \
  BENCHMARK(BM_loss<bf16, Loss::loss>)->Name(name "/bf16")->Apply(shapes)
FUSEDKD_BENCH(KD, "kd");
FUSEDKD_BENCH(DKD, "dkd");
FUSEDKD_BENCH(NKD, "nkd");
FUSEDKD_BENCH(RLD, "rld");
FUSEDKD_BENCH(RLDStd, "rld_std");
FUSEDKD_BENCH(USKD, "uskd");
#undef FUSEDKD_BENCH

// The losses reached only through the registry's generic entry point (run_loss), with their default
// parameters and, for JSD, a softcap of 30 (the extra tanh per element).
template <class T, template <class> class L, bool kSoftcap = false> void BM_registry(benchmark::State& state) {
  typename L<float>::Params p{};
  if constexpr (kSoftcap) p.softcap = 30.0;
  Inputs<T> in(state.range(0), state.range(1));
  for (auto _ : state) {
    auto v = fusedkd::cpu::run_loss<L>(p, in.logits(), in.labels(), Reduction::BatchMean, in.outputs());
    benchmark::DoNotOptimize(v);
    benchmark::ClobberMemory();
  }
  set_counters(state, in);
}
#define FUSEDKD_BENCH_REGISTRY(name, ...)                                                          \
  BENCHMARK(BM_registry<float, __VA_ARGS__>)->Name(name "/f32")->Apply(shapes);                     \
  BENCHMARK(BM_registry<bf16, __VA_ARGS__>)->Name(name "/bf16")->Apply(shapes)
FUSEDKD_BENCH_REGISTRY("forward_kl", fusedkd::ForwardKL);
FUSEDKD_BENCH_REGISTRY("reverse_kl", fusedkd::ReverseKL);
FUSEDKD_BENCH_REGISTRY("jsd", fusedkd::JSD);
FUSEDKD_BENCH_REGISTRY("tvd", fusedkd::TVD);
FUSEDKD_BENCH_REGISTRY("jsd_softcap", fusedkd::JSD, true);
FUSEDKD_BENCH_REGISTRY("cross_entropy", fusedkd::CrossEntropy);
#undef FUSEDKD_BENCH_REGISTRY

// Top-k teacher KD (cpu::topk_kd), k = 64 teacher entries per row at random distinct indices; the tail
// mode as template argument. Bytes: read student + write gradient (the teacher's [N, k] is negligible).
template <class T, std::int64_t kTail> void BM_topk(benchmark::State& state) {
  Inputs<T> in(state.range(0), state.range(1));
  const std::int64_t k = std::min<std::int64_t>(64, in.C);
  std::vector<float> lp(std::size_t(in.N * k));
  std::vector<std::int64_t> idx(std::size_t(in.N * k));
  std::mt19937 rng(1);
  for (std::int64_t i = 0; i < in.N; ++i) {
    std::vector<std::int64_t> perm(std::size_t(in.C));
    for (std::int64_t j = 0; j < in.C; ++j) perm[std::size_t(j)] = j;
    std::shuffle(perm.begin(), perm.end(), rng);
    for (std::int64_t e = 0; e < k; ++e) {
      idx[std::size_t(i * k + e)] = perm[std::size_t(e)];
      lp[std::size_t(i * k + e)] = -1.0f - 0.1f * float(e);
    }
  }
  fusedkd::TopKKDParams p;
  p.tail = kTail;
  const fusedkd::TopKView<T, float, std::int64_t> x{in.s.data(), in.C, lp.data(), k, idx.data(), k, in.N, in.C, k};
  for (auto _ : state) {
    auto v = fusedkd::cpu::topk_kd(p, x, in.labels(), Reduction::BatchMean, in.outputs());
    benchmark::DoNotOptimize(v);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * 2 * in.N * in.C * std::int64_t(sizeof(T)));
  state.SetItemsProcessed(state.iterations() * in.N);
}
BENCHMARK(BM_topk<float, 0>)->Name("topk_kd_ghost/f32")->Apply(shapes);
BENCHMARK(BM_topk<bf16, 0>)->Name("topk_kd_ghost/bf16")->Apply(shapes);
BENCHMARK(BM_topk<float, 1>)->Name("topk_kd_renormalize/f32")->Apply(shapes);
BENCHMARK(BM_scale_rows<float>)->Name("scale_rows/f32")->Apply(shapes);
BENCHMARK(BM_scale_rows<bf16>)->Name("scale_rows/bf16")->Apply(shapes);

}  // namespace
