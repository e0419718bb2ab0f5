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

#include <fusedkd/registry.hpp>

#include "checks.hpp"
#include "cpu_rows.hpp"
#include "loss_op.hpp"

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
template <class TL>
int64_t checked_counted_rows(const LabelsView<TL>& labels, int64_t N, int64_t C, const char* name = "target") {
  try {
    validate_labels(labels, N, C, name);
  } catch (const Error& e) {
    fail(user_message(e));
  }
  return count_counted_rows(labels, N);
}

// The gradient's scale: the reduction's (1/N counted for batchmean), 1 for per-row losses.
template <class A> A grad_scale(Reduction r, int64_t counted) {
  return r == Reduction::None ? A(1) : reduction_scale<A>(r, counted);
}

// A row-local loss (rows independent): CpuRows<Loss, ...>::run over row ranges in parallel;
// returns (loss, grad_student). Arguments checked (check_loss_args).
struct CpuRowLocal {
  template <template <class> class Loss> static std::tuple<Tensor, Tensor> run(const LossArgs<Loss>& a) {
    const Tensor student = with_unit_column_stride(a.student);
    const Tensor teacher = with_unit_column_stride(a.second);
    const int64_t N = student.size(0), C = student.size(1);
    Tensor loss = new_loss(student, a.reduction);
    Tensor grad = new_grad(student, a.compute_grad);
    const char* label_name = label_name_of<Loss<float>>::value;

    dispatch_pair(student.scalar_type(), teacher.scalar_type(), [&](auto ts, auto tt) {
      using TS = typename decltype(ts)::type;
      using TT = typename decltype(tt)::type;
      using A = acc_t<TS>;
      LogitsView<TS, TT> x{static_cast<const TS*>(student.data_ptr()), student.stride(0),
                           static_cast<const TT*>(teacher.data_ptr()), teacher.stride(0), N, C};
      auto run = [&](auto tl, const void* label_ptr) {
        using TL = typename decltype(tl)::type;
        LabelsView<TL> labels{static_cast<const TL*>(label_ptr), a.ignore_index};
        const int64_t counted = checked_counted_rows(labels, N, C, label_name);
        std::vector<A> row_loss(static_cast<size_t>(N));
        using TG = grad_t<TS>;
        RowOutputs<A, TG> out{row_loss.data(), a.compute_grad ? static_cast<TG*>(grad.data_ptr()) : nullptr, C,
                              grad_scale<A>(a.reduction, counted)};
        torch::stable::parallel_for(0, N, grain_rows(C), [&](int64_t begin, int64_t end) {
          CpuRows<Loss, TS, TT, TL>::run(a.params, x, labels, out, begin, end);
        });
        write_loss(loss, row_loss, a.reduction, counted);
      };
      if constexpr (label_use<Loss<float>>() != LabelUse::None) {
        if (a.target) {
          const Tensor target = contiguous_1d(*a.target);
          return dispatch_label(target.scalar_type(), [&](auto tl) { run(tl, target.data_ptr()); });
        }
      }
      run(Tag<std::int64_t>{}, nullptr);  // no labels: every row counts
    });
    return {loss, grad};
  }
};

// USKD: pass 1 (row statistics) in parallel, the batch mean of u, pass 2 (ranking, loss and both
// gradients) in parallel.
struct CpuUSKD {
  template <template <class> class Loss> static std::tuple<Tensor, Tensor, Tensor> run(const LossArgs<Loss>& a) {
    const USKDParams& p = a.params;
    const Reduction reduction_kind = a.reduction;
    const bool compute_grad = a.compute_grad;
    const int64_t ignore_index = a.ignore_index;
    const Tensor& student_in = a.student;
    const Tensor& weak_in = a.second;
    const Tensor& target_in = *a.target;
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
};

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
#define FUSEDKD_IMPL_ROW_LOCAL(L) m.impl(fusedkd::L<float>::name, &fusedkd::binding::boxed_loss<fusedkd::L, fusedkd::binding::CpuRowLocal>);
  FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_IMPL_ROW_LOCAL)
#undef FUSEDKD_IMPL_ROW_LOCAL
  m.impl(fusedkd::USKD<float>::name, &fusedkd::binding::boxed_loss<fusedkd::USKD, fusedkd::binding::CpuUSKD>);
  m.impl("scale_grad_", TORCH_BOX(&fusedkd::binding::scale_grad_cpu));
}
