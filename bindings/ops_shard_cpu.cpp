// CPU implementations of the vocabulary-shard ops (shard_op.hpp): cpu/shard_rows.hpp's three steps
// over row ranges with torch's intra-op thread pool. Each row is computed by one thread and the
// row losses are summed in a fixed order, so results do not depend on the thread count.
#include <torch/csrc/stable/library.h>

#include <cstring>
#include <tuple>
#include <vector>

#include <fusedkd/cpu/shard_rows.hpp>
#include <fusedkd/reduction.hpp>
#include <fusedkd/registry.hpp>

#include "checks.hpp"
#include "shard_op.hpp"

namespace fusedkd::binding {
namespace {

constexpr int64_t kShardGrainElements = int64_t(1) << 12;
int64_t shard_grain_rows(int64_t cols) { return std::max<int64_t>(1, kShardGrainElements / std::max<int64_t>(cols, 1)); }

// Views of the shard's inputs; f(rows, partials type tag) with TS, TT, A fixed.
template <template <class> class Loss, class F> void with_shard_rows(const ShardArgs<Loss>& a, F&& f) {
  const Tensor student = with_unit_column_stride(a.student);
  const Tensor teacher = with_unit_column_stride(a.teacher);
  const int64_t N = student.size(0), C = student.size(1);
  dispatch_pair(student.scalar_type(), teacher.scalar_type(), [&](auto ts, auto tt) {
    using TS = typename decltype(ts)::type;
    using TT = typename decltype(tt)::type;
    using A = acc_t<TS>;
    cpu::ShardRows<TS, TT, std::int64_t, A> rows;
    rows.x = LogitsView<TS, TT>{static_cast<const TS*>(student.data_ptr()), student.stride(0),
                                static_cast<const TT*>(teacher.data_ptr()), teacher.stride(0), N, C};
    Tensor labels;
    if (a.labels) {
      labels = contiguous_1d(*a.labels);
      rows.labels = LabelsView<std::int64_t>{static_cast<const std::int64_t*>(labels.data_ptr()), a.ignore_index};
      try {
        validate_labels(rows.labels, N, a.layout.vocab_size, label_name_of<Loss<float>>::value);
      } catch (const Error& e) {
        fail(user_message(e), " (the global vocabulary: vocab_size)");
      }
    }
    rows.layout = a.layout;
    if (a.target_logits) rows.target_logits = static_cast<const A*>(a.target_logits->data_ptr());
    f(rows, student);
  });
}

// A copy of the [world, N] states of type T (each T's bytes exchanged as they are), aligned.
template <class T> std::vector<T> states_of(const Tensor& bytes) {
  std::vector<T> out(size_t(bytes.size(0) * bytes.size(1)));
  if (!out.empty()) std::memcpy(out.data(), bytes.data_ptr(), out.size() * sizeof(T));
  return out;
}

template <class T> void write_states(Tensor& bytes, const std::vector<T>& states) {
  if (!states.empty()) std::memcpy(bytes.data_ptr(), states.data(), states.size() * sizeof(T));
}

template <template <class> class Loss>
void boxed_shard_stats(StableIValue* stack, std::uint64_t num_args, std::uint64_t) {
  ShardArgs<Loss> a = unbox_shard_args<Loss>(ShardStep::Stats, stack, num_args);
  Tensor out = torch::stable::new_empty(a.student, {a.student.size(0), shard_partial_bytes<Loss>(a.student)},
                                        ScalarType::Byte);
  with_shard_rows(a, [&](const auto& rows, const Tensor&) {
    using A = std::decay_t<decltype(*rows.target_logits)>;
    std::vector<ShardPartial<Loss, A>> parts(size_t(rows.x.rows));
    torch::stable::parallel_for(0, rows.x.rows, shard_grain_rows(rows.x.cols), [&](int64_t begin, int64_t end) {
      cpu::shard_stats_rows<Loss>(a.params, rows, parts.data(), begin, end);
    });
    write_states(out, parts);
  });
  stack[0] = torch::stable::detail::from(std::move(out));
}

template <template <class> class Loss>
void boxed_shard_cross(StableIValue* stack, std::uint64_t num_args, std::uint64_t) {
  ShardArgs<Loss> a = unbox_shard_args<Loss>(ShardStep::Cross, stack, num_args);
  Tensor out = torch::stable::new_empty(a.student, {a.student.size(0), shard_cross_bytes<Loss>(a.student)},
                                        ScalarType::Byte);
  with_shard_rows(a, [&](const auto& rows, const Tensor&) {
    using A = std::decay_t<decltype(*rows.target_logits)>;
    const auto parts = states_of<ShardPartial<Loss, A>>(*a.partials);
    std::vector<cross_t<Loss<A>>> cross(size_t(rows.x.rows));
    torch::stable::parallel_for(0, rows.x.rows, shard_grain_rows(rows.x.cols), [&](int64_t begin, int64_t end) {
      cpu::shard_cross_rows<Loss>(a.params, rows, parts.data(), int(a.partials->size(0)), cross.data(), begin, end);
    });
    write_states(out, cross);
  });
  stack[0] = torch::stable::detail::from(std::move(out));
}

template <template <class> class Loss>
void boxed_shard_finish(StableIValue* stack, std::uint64_t num_args, std::uint64_t) {
  ShardArgs<Loss> a = unbox_shard_args<Loss>(ShardStep::Finish, stack, num_args);
  Tensor loss = new_loss(a.student, a.reduction);
  Tensor grad = new_grad(a.student, a.compute_grad);
  with_shard_rows(a, [&](const auto& rows, const Tensor&) {
    using A = std::decay_t<decltype(*rows.target_logits)>;
    using TS = std::decay_t<decltype(*rows.x.student)>;
    using TG = grad_t<TS>;
    const int64_t N = rows.x.rows, C = rows.x.cols;
    const auto parts = states_of<ShardPartial<Loss, A>>(*a.partials);
    std::vector<cross_t<Loss<A>>> cross;
    if (a.cross) cross = states_of<cross_t<Loss<A>>>(*a.cross);
    const int64_t counted = count_counted_rows(rows.labels, N);
    std::vector<A> row_loss(static_cast<size_t>(N));
    const A scale = a.reduction == Reduction::None ? A(1) : reduction_scale<A>(a.reduction, counted);
    RowOutputs<A, TG> out{row_loss.data(), a.compute_grad ? static_cast<TG*>(grad.data_ptr()) : nullptr, C, scale};
    torch::stable::parallel_for(0, N, shard_grain_rows(C), [&](int64_t begin, int64_t end) {
      cpu::shard_finish_rows<Loss>(a.params, rows, parts.data(), a.cross ? cross.data() : nullptr,
                                   int(a.partials->size(0)), out, begin, end);
    });
    A* l = static_cast<A*>(loss.data_ptr());
    if (a.reduction == Reduction::None)
      std::copy(row_loss.begin(), row_loss.end(), l);
    else
      l[0] = A(cpu::sum_rows(row_loss.data(), N) * double(reduction_scale<A>(a.reduction, counted)));
  });
  stack[0] = torch::stable::detail::from(std::move(loss));
  stack[1] = torch::stable::detail::from(std::move(grad));
}

}  // namespace
}  // namespace fusedkd::binding

STABLE_TORCH_LIBRARY_IMPL(fusedkd, CPU, m) {
  using fusedkd::binding::ShardStep;
#define FUSEDKD_IMPL_SHARD(L)                                                                                   \
  m.impl(fusedkd::binding::shard_op_name<fusedkd::L>(ShardStep::Stats).c_str(),                                 \
         &fusedkd::binding::boxed_shard_stats<fusedkd::L>);                                                     \
  if (fusedkd::has_cross_pass<fusedkd::L<float>>::value)                                                        \
    m.impl(fusedkd::binding::shard_op_name<fusedkd::L>(ShardStep::Cross).c_str(),                               \
           &fusedkd::binding::boxed_shard_cross<fusedkd::L>);                                                   \
  m.impl(fusedkd::binding::shard_op_name<fusedkd::L>(ShardStep::Finish).c_str(),                                \
         &fusedkd::binding::boxed_shard_finish<fusedkd::L>);
  FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_IMPL_SHARD)
#undef FUSEDKD_IMPL_SHARD
}
