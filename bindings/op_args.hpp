// What every implementation of an op (CPU, CUDA) checks first, and the loss parameters it builds
// from the op's scalar arguments — written once here so the two stay identical.
#pragma once

#include <fusedkd/fusedkd.hpp>

#include "checks.hpp"

namespace fusedkd::binding {

// student_logits [N, C]; a second logits tensor of the same shape (`second_name`: teacher_logits
// or weak_logits); labels [N] when the loss has them; at least `min_classes` classes.
inline void check_inputs(const Tensor& student, const Tensor& second, const char* second_name, const Tensor* target,
                         int64_t min_classes) {
  check_logits(student, "student_logits");
  check_pair(student, second, second_name);
  if (target) check_target(student, *target);
  check_min_classes(student, min_classes);
}

inline KDParams kd_params(double temperature, bool logit_standardization) {
  check_temperature(temperature, "temperature");
  KDParams p;
  p.temperature = temperature;
  p.logit_standardization = logit_standardization;
  return p;
}

inline DKDParams dkd_params(double alpha, double beta, double temperature, bool logit_standardization) {
  check_finite(alpha, "alpha");
  check_finite(beta, "beta");
  check_temperature(temperature, "temperature");
  DKDParams p;
  p.alpha = alpha;
  p.beta = beta;
  p.temperature = temperature;
  p.logit_standardization = logit_standardization;
  return p;
}

inline NKDParams nkd_params(double temperature, double gamma) {
  check_temperature(temperature, "temperature");
  check_finite(gamma, "gamma");
  NKDParams p;
  p.temperature = temperature;
  p.gamma = gamma;
  return p;
}

inline RLDParams rld_params(double alpha, double beta, double temperature, double alpha_temperature,
                            bool logit_standardization) {
  check_finite(alpha, "alpha");
  check_finite(beta, "beta");
  check_temperature(temperature, "temperature");
  check_temperature(alpha_temperature, "alpha_temperature");
  RLDParams p;
  p.alpha = alpha;
  p.beta = beta;
  p.temperature = temperature;
  p.alpha_temperature = alpha_temperature;
  p.logit_standardization = logit_standardization;
  return p;
}

// USKD also needs the weak logits in the student's dtype (one element type for both gradients).
inline USKDParams uskd_params(const Tensor& student, const Tensor& weak, double alpha, double beta, double mu) {
  FUSEDKD_CHECK(weak.scalar_type() == student.scalar_type(), "weak_logits must have the dtype of student_logits (",
                dtype_name(student.scalar_type()), "), got ", dtype_name(weak.scalar_type()));
  check_finite(alpha, "alpha");
  check_finite(beta, "beta");
  check_finite(mu, "mu");
  USKDParams p;
  p.alpha = alpha;
  p.beta = beta;
  p.mu = mu;
  return p;
}

}  // namespace fusedkd::binding
