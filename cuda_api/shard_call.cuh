// The vocabulary-shard steps behind the type-erased API (api.hpp): one template per step, instantiated
// per loss in generated units (cuda_api/shard_instance.cu.in, cmake/FusedkdTorch.cmake), each for
// every supported dtype pair.
#pragma once

#include <fusedkd/cuda/shard_launch.cuh>

#include "api.hpp"
#include "dispatch.cuh"

namespace fusedkd::kernels {

namespace detail {

template <class TS, class TT> cuda::ShardInputs<TS, TT> shard_inputs(const ShardCall& c) {
  cuda::ShardInputs<TS, TT> in;
  in.x = LogitsView<TS, TT>{static_cast<const TS*>(c.student), c.student_row_stride, static_cast<const TT*>(c.teacher),
                            c.teacher_row_stride, c.rows, c.cols};
  in.labels = cuda::DeviceLabels{c.labels, c.labels_int32, c.ignore_index};
  in.layout = ShardLayout{c.vocab_start, c.vocab_size};
  in.target_logits = static_cast<const acc_t<TS>*>(c.target_logits);
  return in;
}

template <class F> void dispatch_shard(const ShardCall& c, F&& f) {
  dispatch_pair(c.student_dtype, c.teacher_dtype, [&](auto ts, auto tt) {
    using TS = typename decltype(ts)::type;
    using TT = typename decltype(tt)::type;
    f(shard_inputs<TS, TT>(c));
  });
}

}  // namespace detail

template <template <class> class Loss> std::size_t shard_partial_bytes(DType student_dtype) {
  return student_dtype == DType::Float64 ? sizeof(ShardPartial<Loss, double>) : sizeof(ShardPartial<Loss, float>);
}

template <template <class> class Loss> std::size_t shard_cross_bytes(DType student_dtype) {
  return student_dtype == DType::Float64 ? sizeof(cross_t<Loss<double>>) : sizeof(cross_t<Loss<float>>);
}

template <template <class> class Loss> std::size_t shard_finish_workspace_size(const ShardCall& c) {
  return c.student_dtype == DType::Float64 ? cuda::shard_finish_workspace_size<double>(c.rows)
                                           : cuda::shard_finish_workspace_size<float>(c.rows);
}

template <template <class> class Loss> void shard_stats(const typename Loss<float>::Params& p, const ShardCall& c) {
  detail::dispatch_shard(c, [&](const auto& in) {
    using A = std::decay_t<decltype(*in.target_logits)>;
    cuda::shard_stats<Loss>(p, in, static_cast<ShardPartial<Loss, A>*>(c.states), static_cast<cudaStream_t>(c.stream));
  });
}

template <template <class> class Loss> void shard_cross(const typename Loss<float>::Params& p, const ShardCall& c) {
  if constexpr (!has_cross_pass<Loss<float>>::value) {
    (void)p;
    (void)c;
    throw Error(std::string(Loss<float>::name) + ": this loss has no cross pass");
  } else {
    detail::dispatch_shard(c, [&](const auto& in) {
      using A = std::decay_t<decltype(*in.target_logits)>;
      cuda::shard_cross<Loss>(p, in, static_cast<const ShardPartial<Loss, A>*>(c.partials), c.world,
                              static_cast<cross_t<Loss<A>>*>(c.states), static_cast<cudaStream_t>(c.stream));
    });
  }
}

template <template <class> class Loss> void shard_finish(const typename Loss<float>::Params& p, const ShardCall& c) {
  detail::dispatch_shard(c, [&](const auto& in) {
    using A = std::decay_t<decltype(*in.target_logits)>;
    using TS = std::decay_t<decltype(*in.x.student)>;
    const cuda::DeviceOutputs<A, grad_t<TS>> out{static_cast<A*>(c.loss), static_cast<grad_t<TS>*>(c.grad),
                                                 c.grad_row_stride};
    cuda::shard_finish<Loss>(p, in, static_cast<const ShardPartial<Loss, A>*>(c.partials),
                             static_cast<const cross_t<Loss<A>>*>(c.cross), c.world, c.reduction, out,
                             cuda::Workspace{c.workspace, c.workspace_bytes}, static_cast<cudaStream_t>(c.stream));
  });
}

}  // namespace fusedkd::kernels
