// A user of the installed (or add_subdirectory'd) header-only C++ API: every loss on a small
// batch. KD is checked against a direct computation; the others for a finite, non-negative loss
// whose "sum" reduction equals the sum of its per-row losses. Exit status 0 on success.
// The calls are the ones docs/api.md shows.
#include <fusedkd/fusedkd.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

namespace {

int failures = 0;

void expect(bool ok, const char* what, double got, double want) {
  if (!ok) {
    std::printf("FAIL %s: got %.9g, want %.9g\n", what, got, want);
    ++failures;
  }
}

// softmax(x / tau) of one row, in double.
std::vector<double> softmax(const float* x, int64_t C, double tau) {
  double m = -INFINITY;
  for (int64_t j = 0; j < C; ++j) m = std::fmax(m, x[j] / tau);
  std::vector<double> p(C);
  double z = 0;
  for (int64_t j = 0; j < C; ++j) z += p[j] = std::exp(x[j] / tau - m);
  for (double& v : p) v /= z;
  return p;
}

}  // namespace

int main() {
  const int64_t N = 4, C = 10;  // C >= 8: the SIMD path
  std::vector<float> student(N * C), teacher(N * C), weak(N * C);
  for (int64_t k = 0; k < N * C; ++k) {
    student[k] = float(std::sin(0.7 * double(k)) * 3.0);
    teacher[k] = float(std::cos(1.3 * double(k)) * 3.0);
    weak[k] = float(std::sin(2.1 * double(k) + 1.0) * 2.0);
  }
  std::vector<int64_t> target = {3, 0, 9, 5};

  // KD, batchmean: ℓ = τ² KL(p_t || p_s) per row, mean over rows; ∂ℓ/∂s = τ (p_s − p_t) / N.
  {
    fusedkd::LogitsView<float> x{student.data(), C, teacher.data(), C, N, C};
    std::vector<float> row_loss(N), grad(N * C);
    const fusedkd::KDParams p{/*temperature=*/4.0};
    const float loss = fusedkd::cpu::kd(p, x, fusedkd::Reduction::BatchMean,
                                        fusedkd::RowOutputs<float, float>{row_loss.data(), grad.data(), C});
    double want = 0;
    for (int64_t i = 0; i < N; ++i) {
      const auto ps = softmax(&student[i * C], C, 4.0), pt = softmax(&teacher[i * C], C, 4.0);
      for (int64_t j = 0; j < C; ++j) {
        want += 16.0 * pt[j] * (std::log(pt[j]) - std::log(ps[j])) / double(N);
        const double g = 4.0 * (ps[j] - pt[j]) / double(N);
        expect(std::fabs(grad[i * C + j] - g) <= 1e-6 + 1e-5 * std::fabs(g), "kd grad", grad[i * C + j], g);
      }
    }
    expect(std::fabs(loss - want) <= 1e-5 * std::fabs(want), "kd loss", loss, want);
  }

  // The losses with labels: reduction "sum" against the per-row losses.
  fusedkd::LogitsView<float> x{student.data(), C, teacher.data(), C, N, C};
  fusedkd::LabelsView<int64_t> labels{target.data(), /*ignore_index=*/-100};
  auto check_sum = [&](const char* name, float loss, const std::vector<float>& row_loss) {
    double total = 0;
    for (float v : row_loss) total += v;
    expect(std::isfinite(loss) && loss >= 0, name, loss, total);
    expect(std::fabs(loss - total) <= 1e-5 * std::fabs(total) + 1e-6, name, loss, total);
  };
  {
    std::vector<float> row_loss(N), grad(N * C);
    const float loss = fusedkd::cpu::dkd(fusedkd::DKDParams{/*alpha=*/1.0, /*beta=*/8.0, /*temperature=*/4.0}, x,
                                         labels, fusedkd::Reduction::Sum,
                                         fusedkd::RowOutputs<float, float>{row_loss.data(), grad.data(), C});
    check_sum("dkd", loss, row_loss);
  }
  {
    std::vector<float> row_loss(N), grad(N * C);
    const float loss = fusedkd::cpu::nkd(fusedkd::NKDParams{/*temperature=*/1.0, /*gamma=*/1.5}, x, labels,
                                         fusedkd::Reduction::Sum,
                                         fusedkd::RowOutputs<float, float>{row_loss.data(), grad.data(), C});
    check_sum("nkd", loss, row_loss);
  }
  {
    fusedkd::RLDParams p;  // alpha 1, beta 8, temperature 4, alpha_temperature 1
    p.logit_standardization = true;
    std::vector<float> row_loss(N), grad(N * C);
    const float loss = fusedkd::cpu::rld(p, x, labels, fusedkd::Reduction::Sum,
                                         fusedkd::RowOutputs<float, float>{row_loss.data(), grad.data(), C});
    check_sum("rld", loss, row_loss);
  }
  {
    // USKD: the weak logits w = fc(feature) instead of a teacher; gradients for both.
    fusedkd::cpu::StudentWeakView<float> xw{student.data(), C, weak.data(), C, N, C};
    std::vector<float> row_loss(N), grad_s(N * C), grad_w(N * C);
    fusedkd::cpu::USKDOutputs<float, float> out;
    out.row_loss = row_loss.data();
    out.grad_student = grad_s.data();
    out.grad_student_row_stride = C;
    out.grad_weak = grad_w.data();
    out.grad_weak_row_stride = C;
    const float loss = fusedkd::cpu::uskd(fusedkd::USKDParams{/*alpha=*/1.0, /*beta=*/0.1, /*mu=*/0.005}, xw, labels,
                                          fusedkd::Reduction::Sum, out);
    check_sum("uskd", loss, row_loss);
  }

  // Errors name the argument.
  try {
    fusedkd::cpu::kd(fusedkd::KDParams{0.0}, x, fusedkd::Reduction::BatchMean, fusedkd::RowOutputs<float, float>{});
    std::printf("FAIL: temperature 0 accepted\n");
    ++failures;
  } catch (const fusedkd::Error& e) {
    std::printf("error as expected: %s\n", e.what());
  }

  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "ok", failures);
  return failures ? 1 : 0;
}
