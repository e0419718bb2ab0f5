// Op schemas of the fusedkd torch library (stable ABI).
//
// Every loss op computes the reduced loss and, when compute_grad is true, ∂loss/∂student for
// an upstream gradient of 1 in the same pass (written in the student's dtype, float32 for a float16
// student — grad_t in numeric.hpp —, [N, C]); the
// Python autograd formula only multiplies it by grad_output. With compute_grad false the grad
// outputs are empty tensors of shape [0]. `reduction` is "batchmean", "sum" or "none"; the loss
// is fp32 (fp64 for fp64 inputs): a scalar, or [N] for "none".
//
// grad_private (Python autograd only; the kernels ignore it): the caller discards the gradient
// outputs (the functional API does), so backward may scale them in place. Raw-op callers leave it
// False and may keep and use the gradient outputs.
//
// scale_grad_ is the backward's one step: grad[i, :] *= grad_output (a scalar, or grad_output[i]
// for "none") in place, rows whose factor is exactly 1 left untouched (no pass over [N, C] after
// loss.backward()). grad_output has the loss's dtype.
#include <torch/csrc/stable/library.h>

STABLE_TORCH_LIBRARY(fusedkd, m) {
  m.def("kd(Tensor student, Tensor teacher, float temperature, bool logit_standardization, str reduction,"
        " bool compute_grad, bool grad_private=False)"
        " -> (Tensor loss, Tensor grad_student)");
  m.def("dkd(Tensor student, Tensor teacher, Tensor target, float alpha, float beta, float temperature,"
        " bool logit_standardization, str reduction, int ignore_index, bool compute_grad, bool grad_private=False)"
        " -> (Tensor loss, Tensor grad_student)");
  m.def("nkd(Tensor student, Tensor teacher, Tensor target, float temperature, float gamma,"
        " str reduction, int ignore_index, bool compute_grad, bool grad_private=False)"
        " -> (Tensor loss, Tensor grad_student)");
  m.def("rld(Tensor student, Tensor teacher, Tensor target, float alpha, float beta, float temperature,"
        " float alpha_temperature, bool logit_standardization, str reduction, int ignore_index,"
        " bool compute_grad, bool grad_private=False) -> (Tensor loss, Tensor grad_student)");
  m.def("uskd(Tensor student, Tensor weak, Tensor target, float alpha, float beta, float mu,"
        " str reduction, int ignore_index, bool compute_grad, bool grad_private=False)"
        " -> (Tensor loss, Tensor grad_student, Tensor grad_weak)");
  m.def("scale_grad_(Tensor(a!) grad, Tensor grad_output) -> ()");
}
