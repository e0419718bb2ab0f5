// Op schemas of the fusedkd torch library (stable ABI): one per loss of the registry
// (include/fusedkd/registry.hpp), generated from its descriptor (schema.hpp), top-k KD (its sparse
// teacher has its own layout: topk_op.hpp), and scale_grad_.
//
// Every loss op computes the reduced loss and, when compute_grad is true, ∂loss/∂student for
// an upstream gradient of 1 in the same pass (written in the student's dtype, float32 for a float16
// student — grad_t in numeric.hpp —, [N, C]); USKD also ∂loss/∂weak. The Python autograd formula
// only multiplies them by grad_output. With compute_grad false the grad outputs are empty tensors
// of shape [0]. `reduction` is "batchmean", "sum" or "none"; the loss is fp32 (fp64 for fp64
// inputs): a scalar, or [N] for "none". Labels (target, or labels for the token-level losses) are
// int64 or int32 [N]; rows whose label is ignore_index count for nothing.
//
// grad_private (Python autograd only; the kernels ignore it): the caller discards the gradient
// outputs (the functional API does), so backward may scale them in place. Raw-op callers leave it
// False and may keep and use the gradient outputs. It is an argument, not Python state, because
// the autograd formula registered for torch.compile sees only the op's inputs and outputs.
//
// scale_grad_ is the backward's one step: grad[i, :] *= grad_output (a scalar, or grad_output[i]
// for "none") in place, rows whose factor is exactly 1 left untouched (no pass over [N, C] after
// loss.backward()). grad_output has the loss's dtype.
#include <torch/csrc/stable/library.h>

#include <string>

#include <fusedkd/registry.hpp>

#include "schema.hpp"
#include "shard_op.hpp"
#include "topk_op.hpp"

STABLE_TORCH_LIBRARY(fusedkd, m) {
#define FUSEDKD_DEF_LOSS(L) m.def(fusedkd::binding::loss_schema<fusedkd::L>().c_str());
  FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_DEF_LOSS)
  FUSEDKD_BATCH_LOSSES(FUSEDKD_DEF_LOSS)
#undef FUSEDKD_DEF_LOSS
  // The vocabulary-shard steps of every row-local loss (shard_op.hpp; _shard_cross: JSD, TVD).
  using fusedkd::binding::ShardStep;
#define FUSEDKD_DEF_SHARD(L)                                                                       \
  m.def(fusedkd::binding::shard_schema<fusedkd::L>(ShardStep::Stats).c_str());                     \
  if (fusedkd::has_cross_pass<fusedkd::L<float>>::value)                                           \
    m.def(fusedkd::binding::shard_schema<fusedkd::L>(ShardStep::Cross).c_str());                   \
  m.def(fusedkd::binding::shard_schema<fusedkd::L>(ShardStep::Finish).c_str());
  FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_DEF_SHARD)
#undef FUSEDKD_DEF_SHARD
  m.def(fusedkd::binding::topk_kd_schema().c_str());
  m.def("scale_grad_(Tensor(a!) grad, Tensor grad_output) -> ()");
}

// Whether this build holds the CUDA kernels; python/fusedkd/_ops.py asks through ctypes
// (HAS_CUDA_KERNELS) instead of querying the dispatcher through a private torch API.
extern "C" __attribute__((visibility("default"))) int fusedkd_has_cuda_kernels() {
#ifdef FUSEDKD_WITH_CUDA
  return 1;
#else
  return 0;
#endif
}
