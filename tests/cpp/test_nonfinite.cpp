// Non-finite inputs and impossible values (issue #15, "Wrong numbers" 2 and 3), on every CPU path:
// fp64 scalar, fp32 scalar (the rows with C < W and the CUDA kernels' code), fp32 on 128-bit and
// AVX2 lanes, and bf16 through the public entry points. The policy (docs/math.md, "Non-finite
// inputs"):
//   - a NaN or +inf logit, or a distribution with no finite logit, makes the row NaN: its loss and
//     every entry of its gradient row(s);
//   - −inf is probability 0: the exact limit, finite or +inf, the same class on every path;
//   - a divergence or cross-entropy is never negative (−inf would be an overflow: NaN).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <fusedkd/fusedkd.hpp>

#include "test_support.hpp"

using namespace fusedkd;
using std::int64_t;
using std::vector;

namespace {

enum class Path { F64, F32Scalar, F32Base, F32Avx2, BF16 };
const char* path_name(Path p) {
  switch (p) {
    case Path::F64: return "f64";
    case Path::F32Scalar: return "f32 scalar";
    case Path::F32Base: return "f32 128-bit lanes";
    case Path::F32Avx2: return "f32 avx2 lanes";
    case Path::BF16: return "bf16";
  }
  return "?";
}
vector<Path> paths() {
  vector<Path> p{Path::F64, Path::F32Scalar, Path::F32Base, Path::BF16};
#if FUSEDKD_CPU_AVX2_DISPATCH
  if (cpu::cpu_has_avx2()) p.push_back(Path::F32Avx2);
#endif
  return p;
}

struct Rows {
  int64_t N, C;
  vector<double> s, t;  // t: teacher, or the weak logits for USKD
  vector<int64_t> y;
};
struct Result {
  vector<double> loss, grad, grad_w;
};

template <template <class> class Loss, class Params, class T>
Result run_row_local(const Params& p, const Rows& d, Path path) {
  using A = acc_t<T>;
  const auto s = test_support::cast<T>(d.s), t = test_support::cast<T>(d.t);
  vector<A> loss(size_t(d.N));
  vector<T> g(size_t(d.N * d.C));
  const LogitsView<T> x{s.data(), d.C, t.data(), d.C, d.N, d.C};
  const LabelsView<int64_t> labels{Loss<A>::uses_label ? d.y.data() : nullptr, -100};
  const RowOutputs<A, T> out{loss.data(), g.data(), d.C};
  bool standardized = false;
  if constexpr (has_logit_standardization<Params>::value) {
    standardized = p.logit_standardization;
    if (standardized) {
      if (path == Path::F32Scalar)
        cpu::run_rows_standardized<Loss>(p, x, labels, out, 0, d.N);
      else
        cpu::loss_rows<Loss>(p, x, labels, out, 0, d.N);
    }
  }
  if (standardized) {
  } else if constexpr (std::is_same_v<A, float>) {
    if (path == Path::F32Scalar) cpu::detail::run_rows_scalar<Loss>(p, x, labels, out, 0, d.N);
    if (path == Path::F32Base) cpu::detail::run_rows_baseline<Loss>(p, x, labels, out, 0, d.N);
#if FUSEDKD_CPU_AVX2_DISPATCH
    if (path == Path::F32Avx2) cpu::detail::run_rows_avx2<Loss>(p, x, labels, out, 0, d.N);
#endif
    if (path == Path::BF16) cpu::run_rows<Loss>(p, x, labels, out, 0, d.N);
  } else {
    cpu::run_rows<Loss>(p, x, labels, out, 0, d.N);
  }
  Result r;
  for (A v : loss) r.loss.push_back(double(v));
  r.grad = test_support::back(g);
  return r;
}

template <template <class> class Loss, class Params> Result run_path(const Params& p, const Rows& d, Path path) {
  switch (path) {
    case Path::F64: return run_row_local<Loss, Params, double>(p, d, path);
    case Path::BF16: return run_row_local<Loss, Params, bfloat16_t>(p, d, path);
    default: return run_row_local<Loss, Params, float>(p, d, path);
  }
}

template <class T> Result run_uskd_t(const USKDParams& p, const Rows& d, Path path) {
  using A = acc_t<T>;
  const auto s = test_support::cast<T>(d.s), w = test_support::cast<T>(d.t);
  vector<A> loss(size_t(d.N));
  vector<T> gs(size_t(d.N * d.C)), gw(size_t(d.N * d.C));
  const cpu::StudentWeakView<T, T> x{s.data(), d.C, w.data(), d.C, d.N, d.C};
  const LabelsView<int64_t> labels{d.y.data(), -100};
  cpu::USKDOutputs<A, T> out;
  out.row_loss = loss.data();
  out.grad_student = gs.data();
  out.grad_student_row_stride = d.C;
  out.grad_weak = gw.data();
  out.grad_weak_row_stride = d.C;
  vector<USKDRowStats<A>> st(size_t(d.N));
  if constexpr (std::is_same_v<T, float>) {
    if (path == Path::F32Scalar) {
      cpu::detail::uskd_stats_rows_scalar(p, x, labels, st.data(), 0, d.N);
      cpu::detail::uskd_rows_scalar(p, x, labels, st.data(), cpu::uskd_mean_u(st.data(), labels, d.N), out, 0, d.N);
    }
    if (path == Path::F32Base) {
      cpu::detail::uskd_stats_rows_baseline(p, x, labels, st.data(), int64_t(0), d.N);
      cpu::detail::uskd_rows_baseline(p, x, labels, st.data(), cpu::uskd_mean_u(st.data(), labels, d.N), out,
                                      int64_t(0), d.N);
    }
#if FUSEDKD_CPU_AVX2_DISPATCH
    if (path == Path::F32Avx2) {
      cpu::detail::uskd_stats_rows_avx2(p, x, labels, st.data(), int64_t(0), d.N);
      cpu::detail::uskd_rows_avx2(p, x, labels, st.data(), cpu::uskd_mean_u(st.data(), labels, d.N), out, int64_t(0),
                                  d.N);
    }
#endif
  } else {
    cpu::uskd_stats_rows(p, x, labels, st.data(), 0, d.N);
    cpu::uskd_rows(p, x, labels, st.data(), cpu::uskd_mean_u(st.data(), labels, d.N), out, 0, d.N);
  }
  Result r;
  for (A v : loss) r.loss.push_back(double(v));
  r.grad = test_support::back(gs);
  r.grad_w = test_support::back(gw);
  return r;
}
Result run_uskd(const USKDParams& p, const Rows& d, Path path) {
  switch (path) {
    case Path::F64: return run_uskd_t<double>(p, d, path);
    case Path::BF16: return run_uskd_t<bfloat16_t>(p, d, path);
    default: return run_uskd_t<float>(p, d, path);
  }
}

struct LossCase {
  std::string name;
  std::function<Result(const Rows&, Path)> run;
  bool uskd = false;
  bool capped = false;  // a softcap: ±inf logits become ±c (c·tanh(x/c)), finite; NaN stays NaN
  bool teacher_free = false;  // reads no teacher: a value there changes nothing
};
// Every row-local loss of the registry with its default parameters (a new loss is checked here without
// an edit), the variants with other row programs, and USKD.
vector<LossCase> losses() {
  vector<LossCase> all;
#define FUSEDKD_DEFAULT_CASE(L)                                                                        \
  all.push_back({L<double>::name, [](const Rows& d, Path p) { return run_path<L>(L<double>::Params{}, d, p); }, \
                 false, false, !L<double>::uses_teacher});
  FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_DEFAULT_CASE)
#undef FUSEDKD_DEFAULT_CASE
  RLDParams rld_std;
  rld_std.logit_standardization = true;
  KDParams kd_std;
  kd_std.logit_standardization = true;
  all.push_back({"nkd_tau2", [](const Rows& d, Path p) { return run_path<NKD>(NKDParams{2.0, 1.5}, d, p); }});
  all.push_back({"rld_std", [rld_std](const Rows& d, Path p) { return run_path<RLD>(rld_std, d, p); }});
  all.push_back({"kd_std", [kd_std](const Rows& d, Path p) { return run_path<KD>(kd_std, d, p); }});
  all.push_back({"reverse_kl_tau2", [](const Rows& d, Path p) { return run_path<ReverseKL>(TokenKLParams{2.0}, d, p); }});
  all.push_back({"forward_kl_cap_tau2", [](const Rows& d, Path p) { return run_path<ForwardKL>(TokenKLParams{2.0, true, 5.0}, d, p); }, false, true});
  all.push_back({"reverse_kl_cap", [](const Rows& d, Path p) { return run_path<ReverseKL>(TokenKLParams{1.0, false, 3.0}, d, p); }, false, true});
  all.push_back({"jsd_beta09_cap", [](const Rows& d, Path p) { return run_path<JSD>(JSDParams{0.9, 2.0, false, 4.0}, d, p); }, false, true});
  all.push_back({"tvd_cap", [](const Rows& d, Path p) { return run_path<TVD>(TVDParams{0.5, 3.0}, d, p); }, false, true});
  all.push_back({"uskd", [](const Rows& d, Path p) { return run_uskd(USKDParams{}, d, p); }, true});
  return all;
}

// Ordinary rows: teacher logits rising with the column (so K = {j : t_j < t_y} = {j < y}), the label in
// the middle, student logits random.
Rows base_rows(int64_t N, int64_t C, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Rows d{N, C, vector<double>(static_cast<size_t>(N * C)), vector<double>(static_cast<size_t>(N * C)), vector<int64_t>(size_t(N), C / 2)};
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < C; ++j) {
      d.s[size_t(i * C + j)] = 2.0 * normal(rng);
      d.t[size_t(i * C + j)] = 0.5 * double(j - C / 2) + 0.1 * normal(rng);
    }
  return d;
}

// One special value per row, at every position that matters: in the student or the teacher (weak),
// at y, at a column in K (0) and at a column above the teacher's target (C − 1).
struct Injection {
  bool teacher;
  int64_t col;
};
Rows inject(int64_t C, double v, vector<Injection>& where) {
  where.clear();
  for (bool teacher : {false, true})
    for (int64_t col : {int64_t(0), C / 2, C - 1}) where.push_back({teacher, col});
  Rows d = base_rows(int64_t(where.size()), C, unsigned(C));
  for (size_t i = 0; i < where.size(); ++i) (where[i].teacher ? d.t : d.s)[i * size_t(C) + size_t(where[i].col)] = v;
  return d;
}

std::string where_str(const LossCase& l, Path p, const Injection& w, double v, int64_t C) {
  return l.name + " " + path_name(p) + " C " + std::to_string(C) + ": " + std::to_string(v) + " in the " +
         (w.teacher ? (l.uskd ? "weak logits" : "teacher") : "student") + " at column " + std::to_string(w.col);
}

void expect_row_nan(const Result& r, int64_t i, int64_t C, const std::string& what) {
  EXPECT_TRUE(std::isnan(r.loss[size_t(i)])) << what << ": loss " << r.loss[size_t(i)];
  for (int64_t j = 0; j < C; ++j) {
    EXPECT_TRUE(std::isnan(r.grad[size_t(i * C + j)])) << what << ": grad[" << j << "] " << r.grad[size_t(i * C + j)];
    if (!r.grad_w.empty())
      EXPECT_TRUE(std::isnan(r.grad_w[size_t(i * C + j)])) << what << ": weak grad[" << j << "] " << r.grad_w[size_t(i * C + j)];
  }
}

// Item 2 and 3: NaN or +inf anywhere → the row is NaN, on every path.
TEST(NonFinite, NanAndPosInfMakeTheRowNan) {
  for (const LossCase& l : losses())
    for (int64_t C : {int64_t(5), int64_t(13)})
      for (double v : {std::numeric_limits<double>::quiet_NaN(), double(INFINITY)})
        for (Path p : paths()) {
          if (l.capped && v > 0) continue;  // +inf is capped to c: CappedInfinitiesAreTheCap
          vector<Injection> where;
          const Rows d = inject(C, v, where);
          if (l.uskd) {  // one row at a time: the batch mean of p_s,y² spreads a student NaN to every row
            for (size_t i = 0; i < where.size(); ++i) {
              Rows one{1, C, vector<double>(d.s.begin() + long(i * C), d.s.begin() + long((i + 1) * C)),
                       vector<double>(d.t.begin() + long(i * C), d.t.begin() + long((i + 1) * C)), {d.y[i]}};
              expect_row_nan(l.run(one, p), 0, C, where_str(l, p, where[i], v, C));
            }
            continue;
          }
          const Result r = l.run(d, p);
          for (size_t i = 0; i < where.size(); ++i) {
            if (l.teacher_free && where[i].teacher) {  // the teacher is not read: the row is the student's
              EXPECT_TRUE(std::isfinite(r.loss[i])) << where_str(l, p, where[i], v, C);
              continue;
            }
            expect_row_nan(r, int64_t(i), C, where_str(l, p, where[i], v, C));
          }
        }
}

int cls(double x) { return std::isnan(x) ? 0 : std::isinf(x) ? (x > 0 ? 1 : -1) : 2; }

// −inf is probability 0: every path gives the same kind of result as fp64 (NaN, ±inf or finite),
// finite values close to fp64, and no negative loss.
TEST(NonFinite, NegInfIsProbabilityZeroOnEveryPath) {
  for (const LossCase& l : losses())
    for (int64_t C : {int64_t(5), int64_t(13)}) {
      vector<Injection> where;
      const Rows d = inject(C, -double(INFINITY), where);
      vector<Rows> cases;
      if (l.uskd)
        for (size_t i = 0; i < where.size(); ++i)
          cases.push_back(Rows{1, C, vector<double>(d.s.begin() + long(i * C), d.s.begin() + long((i + 1) * C)),
                               vector<double>(d.t.begin() + long(i * C), d.t.begin() + long((i + 1) * C)), {d.y[i]}});
      else
        cases.push_back(d);
      for (size_t k = 0; k < cases.size(); ++k) {
        const Result ref = l.run(cases[k], Path::F64);
        for (Path p : paths()) {
          const Result r = l.run(cases[k], p);
          const double tol = p == Path::BF16 ? 0.1 : 1e-4;
          for (int64_t i = 0; i < cases[k].N; ++i) {
            const std::string what = where_str(l, p, where[l.uskd ? k : size_t(i)], -double(INFINITY), C);
            const double a = r.loss[size_t(i)], b = ref.loss[size_t(i)];
            EXPECT_FALSE(a < 0) << what << ": negative loss " << a;
            EXPECT_EQ(cls(a), cls(b)) << what << ": loss " << a << " vs fp64 " << b;
            if (cls(a) == 2 && cls(b) == 2 && p != Path::BF16) EXPECT_NEAR(a, b, tol * (1 + std::abs(b))) << what;
            for (int64_t j = 0; j < C; ++j) {
              const double ga = r.grad[size_t(i * C + j)], gb = ref.grad[size_t(i * C + j)];
              EXPECT_EQ(cls(ga), cls(gb)) << what << ": grad[" << j << "] " << ga << " vs fp64 " << gb;
              if (cls(ga) == 2 && cls(gb) == 2 && p != Path::BF16) EXPECT_NEAR(ga, gb, tol) << what << " grad " << j;
            }
          }
        }
      }
    }
}

// A row with no finite logit in a softmax has no distribution: NaN.
TEST(NonFinite, AllNegInfRowIsNan) {
  for (const LossCase& l : losses())
    for (int64_t C : {int64_t(5), int64_t(13)})
      for (bool teacher : {false, true})
        for (Path p : paths()) {
          if (l.capped) continue;  // all −c: a uniform row (CappedInfinitiesAreTheCap)
          if (l.teacher_free && teacher) continue;  // no teacher is read
          Rows d = base_rows(1, C, 3);
          for (auto& v : teacher ? d.t : d.s) v = -double(INFINITY);
          expect_row_nan(l.run(d, p), 0, C,
                         l.name + " " + path_name(p) + " all −inf " + (teacher ? "teacher" : "student") + " C " +
                             std::to_string(C));
        }
}

// With a softcap, ±inf logits are ±c, as c·tanh(x/c) gives (and the PyTorch reference): a finite,
// nonnegative loss and a finite gradient, the same on every path as in fp64.
TEST(NonFinite, CappedInfinitiesAreTheCap) {
  for (const LossCase& l : losses()) {
    if (!l.capped) continue;
    for (int64_t C : {int64_t(5), int64_t(13)})
      for (Path p : paths()) {
        Rows d = base_rows(3, C, 7);
        for (auto& v : d.t) v *= 0.5;
        d.s[1] = INFINITY;                               // one +inf in row 0
        for (int64_t j = 0; j < C; ++j) d.t[size_t(C + j)] = -double(INFINITY);  // an all −inf teacher row 1
        d.s[size_t(2 * C)] = -double(INFINITY);          // one −inf in row 2
        const Result r = l.run(d, p);
        for (size_t k = 0; k < r.loss.size(); ++k)
          EXPECT_TRUE(std::isfinite(r.loss[k]) && r.loss[k] >= 0) << l.name << " " << path_name(p) << " row " << k;
        for (size_t k = 0; k < r.grad.size(); ++k) EXPECT_TRUE(std::isfinite(r.grad[k])) << l.name << " " << k;
        const Result ref = l.run(d, Path::F64);
        const double tol = p == Path::BF16 ? 0.1 : 1e-4;
        for (size_t k = 0; k < r.loss.size(); ++k)
          EXPECT_NEAR(r.loss[k], ref.loss[k], tol * std::max(1.0, std::abs(ref.loss[k]))) << l.name << " " << k;
      }
  }
}

// Item 3: logits near the float range (±3e38) never give a negative or −inf loss.
TEST(NonFinite, HugeLogitsNeverGiveANegativeLoss) {
  for (const LossCase& l : losses())
    for (int64_t C : {int64_t(5), int64_t(13)})
      for (Path p : paths()) {
        if (p == Path::BF16 || p == Path::F64) continue;
        Rows d = base_rows(8, C, 11);
        std::mt19937 rng(5);
        for (auto* v : {&d.s, &d.t})
          for (auto& x : *v) x = (rng() % 2 ? 3e38 : -3e38) * (0.5 + 0.5 * double(rng() % 1000) / 1000.0);
        const Result r = l.run(d, p);
        for (int64_t i = 0; i < d.N; ++i) {
          const double a = r.loss[size_t(i)];
          EXPECT_TRUE(std::isnan(a) || a >= 0) << l.name << " " << path_name(p) << " C " << C << " row " << i
                                               << ": loss " << a;
        }
      }
}

// A divergence of a distribution from itself is 0, never a negative rounding residue.
TEST(NonFinite, DivergenceOfEqualRowsIsNotNegative) {
  for (const LossCase& l : losses())
    for (int64_t C : {int64_t(5), int64_t(13), int64_t(1000)})
      for (Path p : paths()) {
        if (l.uskd) continue;
        Rows d = base_rows(64, C, 17);
        std::mt19937 rng(3);
        std::normal_distribution<double> normal(0.0, 4.0);
        for (size_t k = 0; k < d.s.size(); ++k) d.s[k] = d.t[k] = normal(rng);
        const Result r = l.run(d, p);
        for (int64_t i = 0; i < d.N; ++i)
          EXPECT_GE(r.loss[size_t(i)], 0.0) << l.name << " " << path_name(p) << " C " << C << " row " << i;
      }
}

}  // namespace
