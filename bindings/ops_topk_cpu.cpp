// CPU implementation of fusedkd::topk_kd: the indices of the counted rows validated (range and
// duplicates: an error naming the row), then cpu::topk_kd_rows over row ranges with torch's intra-op
// thread pool. Each row is computed by one thread and the row losses summed in a fixed order, so the
// result does not depend on the thread count.
#include <torch/csrc/stable/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include <fusedkd/fusedkd.hpp>

#include "checks.hpp"
#include "topk_op.hpp"

namespace fusedkd::binding {
namespace {

// Rows per task: about 2^12 elements each (as the other CPU ops).
int64_t topk_grain_rows(int64_t cols) { return std::max<int64_t>(1, (int64_t(1) << 12) / std::max<int64_t>(cols, 1)); }

struct CpuTopK {
  static std::tuple<Tensor, Tensor> run(const TopKArgs& a) {
    TopKTensors io(a);
    const Tensor &student = io.student, &logprobs = io.logprobs, &indices = io.indices;
    Tensor &loss = io.loss, &grad = io.grad;
    const int64_t N = io.N, V = io.V, k = io.k;
    dispatch_one(student.scalar_type(), [&](auto ts) {
      using TS = typename decltype(ts)::type;
      using A = acc_t<TS>;
      using TG = grad_t<TS>;
      auto with_index = [&](auto ti) {
        using TI = typename decltype(ti)::type;
        const TopKView<TS, A, TI> x{static_cast<const TS*>(student.data_ptr()), io.student_stride(),
                                    static_cast<const A*>(logprobs.data_ptr()), io.logprobs_stride(),
                                    static_cast<const TI*>(indices.data_ptr()), io.indices_stride(), N, V, k};
        auto with_labels = [&](auto tl, const void* label_ptr) {
          using TL = typename decltype(tl)::type;
          const LabelsView<TL> labels{static_cast<const TL*>(label_ptr), a.ignore_index};
          int64_t counted = 0;
          try {
            validate_labels(labels, N, V, "labels");
            validate_topk_indices(x, labels);
          } catch (const Error& e) {
            fail(user_message(e));
          }
          counted = count_counted_rows(labels, N);
          std::vector<A> row_loss(static_cast<size_t>(N));
          const A scale = a.reduction == Reduction::None ? A(1) : reduction_scale<A>(a.reduction, counted);
          const RowOutputs<A, TG> out{row_loss.data(), a.compute_grad ? static_cast<TG*>(grad.data_ptr()) : nullptr, V,
                                      scale};
          torch::stable::parallel_for(0, N, topk_grain_rows(V), [&](int64_t begin, int64_t end) {
            cpu::topk_kd_rows(a.params, x, labels, out, begin, end);
          });
          A* dst = static_cast<A*>(loss.data_ptr());
          if (a.reduction == Reduction::None)
            std::copy(row_loss.begin(), row_loss.end(), dst);
          else
            dst[0] = A(cpu::sum_rows(row_loss.data(), N) * double(reduction_scale<A>(a.reduction, counted)));
        };
        if (a.labels) {
          const Tensor labels = contiguous_1d(*a.labels);
          return dispatch_label(labels.scalar_type(), [&](auto tl) { with_labels(tl, labels.data_ptr()); });
        }
        with_labels(Tag<std::int64_t>{}, nullptr);
      };
      dispatch_label(indices.scalar_type(), with_index);  // int64 or int32, as labels
    });
    return {loss, grad};
  }
};

}  // namespace
}  // namespace fusedkd::binding

STABLE_TORCH_LIBRARY_IMPL(fusedkd, CPU, m) {
  m.impl(fusedkd::binding::kTopKName, &fusedkd::binding::boxed_topk<fusedkd::binding::CpuTopK>);
}
