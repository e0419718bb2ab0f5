// CPU implementations of the fusedkd ops: the header-only CPU executor run over row ranges with
// torch's intra-op thread pool (stable parallel_for). Results do not depend on the thread count:
// each row is computed by one thread and the row losses are summed in a fixed order.
//
// The row loops themselves (the executor's template instantiations) are compiled in separate
// generated units, one per loss and student dtype (cpu_rows.hpp); this file only dispatches.
#include <torch/csrc/stable/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include <fusedkd/fusedkd.hpp>

#include "checks.hpp"
#include "cpu_rows.hpp"
#include "op_args.hpp"

namespace fusedkd::binding {
namespace {

// Rows per task: about kGrainElements elements (~10 µs on the SIMD path) to amortize the scheduling.
constexpr int64_t kGrainElements = int64_t(1) << 12;
int64_t grain_rows(int64_t cols) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(cols, 1)); }

template <class A> void write_loss(Tensor& loss, const std::vector<A>& row_loss, Reduction r, int64_t counted) {
  A* out = static_cast<A*>(loss.data_ptr());
  if (r == Reduction::None) {
    std::copy(row_loss.begin(), row_loss.end(), out);
    return;
  }
  out[0] = A(cpu::sum_rows(row_loss.data(), int64_t(row_loss.size())) * double(reduction_scale<A>(r, counted)));
}

// Validates the labels (an error names the argument) and counts the rows that are not ignored.
template <class TL> int64_t checked_counted_rows(const LabelsView<TL>& labels, int64_t N, int64_t C) {
  try {
    validate_labels(labels, N, C);
  } catch (const Error& e) {
    fail(user_message(e));
  }
  return count_counted_rows(labels, N);
}

// The gradient's scale: the reduction's (1/N counted for batchmean), 1 for per-row losses.
template <class A> A grad_scale(Reduction r, int64_t counted) {
  return r == Reduction::None ? A(1) : reduction_scale<A>(r, counted);
}

// Runs the rows of a loss whose rows are independent (CpuRows<Loss, ...>::run over row ranges in
// parallel); returns (loss, grad_student).
template <template <class> class Loss>
std::tuple<Tensor, Tensor> run_row_local(const typename Loss<float>::Params& params, const Tensor& student_in,
                                         const Tensor* teacher_in, const Tensor* target_in, int64_t ignore_index,
                                         Reduction reduction, bool compute_grad) {
  const Tensor student = with_unit_column_stride(student_in);
  const Tensor teacher = teacher_in ? with_unit_column_stride(*teacher_in) : student;
  const int64_t N = student.size(0), C = student.size(1);
  Tensor loss = new_loss(student, reduction);
  Tensor grad = new_grad(student, compute_grad);

  dispatch_pair(student.scalar_type(), teacher.scalar_type(), [&](auto ts, auto tt) {
    using TS = typename decltype(ts)::type;
    using TT = typename decltype(tt)::type;
    using A = acc_t<TS>;
    try { validate(params, accumulation_of<A>()); } catch (const Error& e) { fail(user_message(e)); }
    LogitsView<TS, TT> x{static_cast<const TS*>(student.data_ptr()), student.stride(0),
                         static_cast<const TT*>(teacher.data_ptr()), teacher.stride(0), N, C};
    auto run = [&](auto tl, const void* label_ptr) {
      using TL = typename decltype(tl)::type;
      LabelsView<TL> labels{static_cast<const TL*>(label_ptr), ignore_index};
      const int64_t counted = checked_counted_rows(labels, N, C);
      std::vector<A> row_loss(static_cast<size_t>(N));
      using TG = grad_t<TS>;
      RowOutputs<A, TG> out{row_loss.data(), compute_grad ? static_cast<TG*>(grad.data_ptr()) : nullptr, C,
                            grad_scale<A>(reduction, counted)};
      torch::stable::parallel_for(0, N, grain_rows(C), [&](int64_t begin, int64_t end) {
        CpuRows<Loss, TS, TT, TL>::run(params, x, labels, out, begin, end);
      });
      write_loss(loss, row_loss, reduction, counted);
    };
    if constexpr (Loss<A>::uses_label) {
      const Tensor target = contiguous_1d(*target_in);
      dispatch_label(target.scalar_type(), [&](auto tl) { run(tl, target.data_ptr()); });
    } else {
      run(Tag<std::int64_t>{}, nullptr);
    }
  });
  return {loss, grad};
}

std::tuple<Tensor, Tensor> kd_cpu(Tensor student, Tensor teacher, double temperature, bool logit_standardization,
                                  std::string reduction, bool compute_grad, bool /*grad_private*/) {
  check_inputs(student, teacher, "teacher_logits", nullptr, KD<float>::min_classes);
  const KDParams p = kd_params(temperature, logit_standardization);
  return run_row_local<KD>(p, student, &teacher, nullptr, -100, reduction_from(reduction), compute_grad);
}

std::tuple<Tensor, Tensor> dkd_cpu(Tensor student, Tensor teacher, Tensor target, double alpha, double beta,
                                   double temperature, bool logit_standardization, std::string reduction,
                                   int64_t ignore_index, bool compute_grad, bool /*grad_private*/) {
  check_inputs(student, teacher, "teacher_logits", &target, DKD<float>::min_classes);
  const DKDParams p = dkd_params(alpha, beta, temperature, logit_standardization);
  return run_row_local<DKD>(p, student, &teacher, &target, ignore_index, reduction_from(reduction),
                       compute_grad);
}

std::tuple<Tensor, Tensor> nkd_cpu(Tensor student, Tensor teacher, Tensor target, double temperature, double gamma,
                                   std::string reduction, int64_t ignore_index, bool compute_grad,
                                   bool /*grad_private*/) {
  check_inputs(student, teacher, "teacher_logits", &target, NKD<float>::min_classes);
  const NKDParams p = nkd_params(temperature, gamma);
  return run_row_local<NKD>(p, student, &teacher, &target, ignore_index, reduction_from(reduction),
                       compute_grad);
}

std::tuple<Tensor, Tensor> rld_cpu(Tensor student, Tensor teacher, Tensor target, double alpha, double beta,
                                   double temperature, double alpha_temperature, bool logit_standardization,
                                   std::string reduction, int64_t ignore_index, bool compute_grad,
                                   bool /*grad_private*/) {
  check_inputs(student, teacher, "teacher_logits", &target, RLD<float>::min_classes);
  const RLDParams p = rld_params(alpha, beta, temperature, alpha_temperature, logit_standardization);
  return run_row_local<RLD>(p, student, &teacher, &target, ignore_index, reduction_from(reduction),
                       compute_grad);
}

// USKD: pass 1 (row statistics) in parallel, the batch mean of u, pass 2 (ranking, loss and both
// gradients) in parallel.
std::tuple<Tensor, Tensor, Tensor> uskd_cpu(Tensor student_in, Tensor weak_in, Tensor target_in, double alpha,
                                            double beta, double mu, std::string reduction, int64_t ignore_index,
                                            bool compute_grad, bool /*grad_private*/) {
  check_inputs(student_in, weak_in, "weak_logits", &target_in, 2);
  const USKDParams p = uskd_params(student_in, weak_in, alpha, beta, mu);
  const Reduction reduction_kind = reduction_from(reduction);
  const Tensor student = with_unit_column_stride(student_in);
  const Tensor weak = with_unit_column_stride(weak_in);
  const Tensor target = contiguous_1d(target_in);
  const int64_t N = student.size(0), C = student.size(1);
  Tensor loss = new_loss(student, reduction_kind);
  Tensor grad_s = new_grad(student, compute_grad);
  Tensor grad_w = new_grad(weak, compute_grad);

  dispatch_one(student.scalar_type(), [&](auto ts) {
    using TS = typename decltype(ts)::type;
    using A = acc_t<TS>;
    cpu::StudentWeakView<TS, TS> x{static_cast<const TS*>(student.data_ptr()), student.stride(0),
                                   static_cast<const TS*>(weak.data_ptr()), weak.stride(0), N, C};
    dispatch_label(target.scalar_type(), [&](auto tl) {
      using TL = typename decltype(tl)::type;
      LabelsView<TL> labels{static_cast<const TL*>(target.data_ptr()), ignore_index};
      const int64_t counted = checked_counted_rows(labels, N, C);
      std::vector<A> row_loss(static_cast<size_t>(N));
      std::vector<USKDRowStats<A>> stats(static_cast<size_t>(N));
      using TG = grad_t<TS>;
      cpu::USKDOutputs<A, TG> out;
      out.row_loss = row_loss.data();
      if (compute_grad) {
        out.grad_student = static_cast<TG*>(grad_s.data_ptr());
        out.grad_student_row_stride = C;
        out.grad_weak = static_cast<TG*>(grad_w.data_ptr());
        out.grad_weak_row_stride = C;
      }
      out.grad_scale = grad_scale<A>(reduction_kind, counted);
      torch::stable::parallel_for(0, N, grain_rows(C), [&](int64_t begin, int64_t end) {
        CpuUSKDRows<TS, TL>::stats(p, x, labels, stats.data(), begin, end);
      });
      const A mean_u = cpu::uskd_mean_u(stats.data(), labels, N);
      torch::stable::parallel_for(0, N, grain_rows(C), [&](int64_t begin, int64_t end) {
        CpuUSKDRows<TS, TL>::rows(p, x, labels, stats.data(), mean_u, out, begin, end);
      });
      write_loss(loss, row_loss, reduction_kind, counted);
    });
  });
  return {loss, grad_s, grad_w};
}

void scale_grad_cpu(Tensor grad, Tensor grad_output) {
  check_scale_args(grad, grad_output);
  const int64_t N = grad.size(0), C = grad.size(1);
  dispatch_one(grad.scalar_type(), [&](auto tg) {
    using T = typename decltype(tg)::type;
    using A = acc_t<T>;
    const RowFactors<A> f{static_cast<const A*>(grad_output.data_ptr()), factor_stride(grad_output)};
    if (N == 0 || C == 0 || (f.stride == 0 && f(0) == A(1))) return;
    T* g = static_cast<T*>(grad.data_ptr());
    const int64_t row_stride = grad.stride(0);
    torch::stable::parallel_for(0, N, grain_rows(C), [&](int64_t begin, int64_t end) {
      cpu::scale_rows(g, row_stride, C, f, begin, end);
    });
  });
}

}  // namespace
}  // namespace fusedkd::binding

STABLE_TORCH_LIBRARY_IMPL(fusedkd, CPU, m) {
  m.impl("kd", TORCH_BOX(&fusedkd::binding::kd_cpu));
  m.impl("dkd", TORCH_BOX(&fusedkd::binding::dkd_cpu));
  m.impl("nkd", TORCH_BOX(&fusedkd::binding::nkd_cpu));
  m.impl("rld", TORCH_BOX(&fusedkd::binding::rld_cpu));
  m.impl("uskd", TORCH_BOX(&fusedkd::binding::uskd_cpu));
  m.impl("scale_grad_", TORCH_BOX(&fusedkd::binding::scale_grad_cpu));
}
