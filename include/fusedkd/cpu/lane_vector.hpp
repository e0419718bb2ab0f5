// The SIMD vector type of the CPU executor: W floats (FloatLanes), W column indices (IndexLanes)
// and W-lane masks (LaneMask), with the arithmetic, comparisons, selects and fixed-order
// horizontal folds the loss policies use, so a policy's push()/grad() templates run unchanged on W
// columns at once. Its exp is in lane_exp.hpp, its loads and stores (float16 / bfloat16
// conversions) in lane_io.hpp; lanes.hpp includes all three.
//
// Built on the GCC/Clang vector extensions (the compiler picks SSE, AVX or NEON for the width
// and the target); other compilers get plain arrays and loops.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../numeric.hpp"

#if defined(__GNUC__) && !defined(__CUDACC__)
#define FUSEDKD_CPU_VECTOR_EXTENSIONS 1
#define FUSEDKD_LANES_INLINE inline __attribute__((always_inline))
#define FUSEDKD_LANES_INLINE_LAMBDA __attribute__((always_inline))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // wide vectors by value in functions that are always inlined
#else
#define FUSEDKD_CPU_VECTOR_EXTENSIONS 0
#define FUSEDKD_LANES_INLINE inline
#define FUSEDKD_LANES_INLINE_LAMBDA
#endif

namespace fusedkd::cpu {

template <class T, int W> struct LaneStorage {
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
  typedef T type __attribute__((vector_size(W * sizeof(T))));
#else
  struct type {
    T v[W];
    T& operator[](int l) { return v[l]; }
    const T& operator[](int l) const { return v[l]; }
  };
#endif
};

// Element-wise op over lanes, written once for both representations.
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#define FUSEDKD_LANEWISE(W, out, expr_vec, expr_lane) out = (expr_vec)
#else
#define FUSEDKD_LANEWISE(W, out, expr_vec, expr_lane) \
  for (int l = 0; l < (W); ++l) out[l] = (expr_lane)
#endif

template <int W> struct LaneMask {
  typename LaneStorage<std::int32_t, W>::type m;  // all ones (true) or 0 per lane
};

template <int W> struct FloatLanes {
  using raw = typename LaneStorage<float, W>::type;
  raw v;
  FUSEDKD_LANES_INLINE FloatLanes() = default;
  FUSEDKD_LANES_INLINE FloatLanes(raw r) : v(r) {}
  FUSEDKD_LANES_INLINE FloatLanes(float x) {  // broadcast
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
    v = raw{} + x;
#else
    for (int l = 0; l < W; ++l) v[l] = x;
#endif
  }
  FUSEDKD_LANES_INLINE float operator[](int l) const { return v[l]; }
};

template <int W> struct IndexLanes {
  typename LaneStorage<std::int32_t, W>::type v;
  // Columns j0, j0 + 1, ..., j0 + W − 1.
  FUSEDKD_LANES_INLINE static IndexLanes iota(std::int64_t j0) {
    IndexLanes r;
    for (int l = 0; l < W; ++l) r.v[l] = std::int32_t(j0 + l);
    return r;
  }
  FUSEDKD_LANES_INLINE static IndexLanes filled(std::int32_t j) {
    IndexLanes r;
    for (int l = 0; l < W; ++l) r.v[l] = j;
    return r;
  }
  FUSEDKD_LANES_INLINE std::int32_t operator[](int l) const { return v[l]; }
};

namespace lanes_detail {
template <int W> FUSEDKD_LANES_INLINE typename LaneStorage<std::int32_t, W>::type as_int(const FloatLanes<W>& a) {
  typename LaneStorage<std::int32_t, W>::type r;
  std::memcpy(&r, &a.v, sizeof r);
  return r;
}
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> as_float(const typename LaneStorage<std::int32_t, W>::type& a) {
  FloatLanes<W> r;
  std::memcpy(&r.v, &a, sizeof r.v);
  return r;
}
}  // namespace lanes_detail

// ----------------------------------------------------------------------------- arithmetic
#define FUSEDKD_LANES_BINARY(op)                                                                  \
  template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> operator op(FloatLanes<W> a, FloatLanes<W> b) { \
    FloatLanes<W> r;                                                                              \
    FUSEDKD_LANEWISE(W, r.v, a.v op b.v, a.v[l] op b.v[l]);                                        \
    return r;                                                                                     \
  }                                                                                               \
  template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> operator op(FloatLanes<W> a, float b) {       \
    return a op FloatLanes<W>(b);                                                                 \
  }                                                                                               \
  template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> operator op(float a, FloatLanes<W> b) {       \
    return FloatLanes<W>(a) op b;                                                                 \
  }                                                                                               \
  template <int W> FUSEDKD_LANES_INLINE FloatLanes<W>& operator op##=(FloatLanes<W>& a, FloatLanes<W> b) { \
    a = a op b;                                                                                   \
    return a;                                                                                     \
  }
FUSEDKD_LANES_BINARY(+)
FUSEDKD_LANES_BINARY(-)
FUSEDKD_LANES_BINARY(*)
FUSEDKD_LANES_BINARY(/)
#undef FUSEDKD_LANES_BINARY

template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> operator-(FloatLanes<W> a) { return FloatLanes<W>(0.0f) - a; }

// ----------------------------------------------------------------------------- comparisons and masks
#define FUSEDKD_LANES_COMPARE(op)                                                                \
  template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator op(FloatLanes<W> a, FloatLanes<W> b) { \
    LaneMask<W> r;                                                                               \
    FUSEDKD_LANEWISE(W, r.m, a.v op b.v, (a.v[l] op b.v[l]) ? -1 : 0);                            \
    return r;                                                                                    \
  }                                                                                              \
  template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator op(FloatLanes<W> a, float b) {        \
    return a op FloatLanes<W>(b);                                                                \
  }
FUSEDKD_LANES_COMPARE(<)
FUSEDKD_LANES_COMPARE(>)
FUSEDKD_LANES_COMPARE(==)
#undef FUSEDKD_LANES_COMPARE

template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator==(IndexLanes<W> j, long long y) {
  LaneMask<W> r;
  const std::int32_t y32 = (y < 0 || y > std::numeric_limits<std::int32_t>::max()) ? -1 : std::int32_t(y);
  FUSEDKD_LANEWISE(W, r.m, j.v == y32, (j.v[l] == y32) ? -1 : 0);
  return r;
}
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator!=(IndexLanes<W> j, long long y) { return !(j == y); }
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator>=(IndexLanes<W> j, std::int32_t k) {
  LaneMask<W> r;
  FUSEDKD_LANEWISE(W, r.m, j.v >= k, (j.v[l] >= k) ? -1 : 0);
  return r;
}
// Lanes [first, W).
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> lane_keep(int first) {
  return IndexLanes<W>::iota(0) >= std::int32_t(first);
}
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator<(IndexLanes<W> a, IndexLanes<W> b) {
  LaneMask<W> r;
  FUSEDKD_LANEWISE(W, r.m, a.v < b.v, (a.v[l] < b.v[l]) ? -1 : 0);
  return r;
}
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator!(LaneMask<W> a) {
  LaneMask<W> r;
  FUSEDKD_LANEWISE(W, r.m, ~a.m, ~a.m[l]);
  return r;
}
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator&&(LaneMask<W> a, LaneMask<W> b) {
  LaneMask<W> r;
  FUSEDKD_LANEWISE(W, r.m, a.m & b.m, a.m[l] & b.m[l]);
  return r;
}
template <int W> FUSEDKD_LANES_INLINE LaneMask<W> operator||(LaneMask<W> a, LaneMask<W> b) {
  LaneMask<W> r;
  FUSEDKD_LANEWISE(W, r.m, a.m | b.m, a.m[l] | b.m[l]);
  return r;
}
// Whether any lane is set: the mask's 64-bit halves OR-folded (a lane shuffle for 8 lanes), then
// two extracts, instead of W lane extracts.
template <int W> FUSEDKD_LANES_INLINE bool any(LaneMask<W> a) {
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
  if constexpr (W == 4 || W == 8) {
    using Q = typename LaneStorage<long long, W / 2>::type;
    Q q;
    std::memcpy(&q, &a.m, sizeof q);
    if constexpr (W == 8) {
#if defined(__clang__)
      q |= __builtin_shufflevector(q, q, 2, 3, 0, 1);
#else
      q |= __builtin_shuffle(q, Q{2, 3, 0, 1});
#endif
    }
    return (q[0] | q[1]) != 0;
  }
#endif
  std::int32_t acc = 0;
  for (int l = 0; l < W; ++l) acc |= a.m[l];
  return acc != 0;
}

// mask ? a : b per lane.
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> select(LaneMask<W> c, FloatLanes<W> a, FloatLanes<W> b) {
  const auto ai = lanes_detail::as_int(a), bi = lanes_detail::as_int(b);
  typename LaneStorage<std::int32_t, W>::type r;
  FUSEDKD_LANEWISE(W, r, (c.m & ai) | (~c.m & bi), (c.m[l] & ai[l]) | (~c.m[l] & bi[l]));
  return lanes_detail::as_float<W>(r);
}
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> select(LaneMask<W> c, float a, FloatLanes<W> b) {
  return select(c, FloatLanes<W>(a), b);
}
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> select(LaneMask<W> c, FloatLanes<W> a, float b) {
  return select(c, a, FloatLanes<W>(b));
}
template <int W>
FUSEDKD_LANES_INLINE IndexLanes<W> select(LaneMask<W> c, IndexLanes<W> a, IndexLanes<W> b) {
  IndexLanes<W> r;
  FUSEDKD_LANEWISE(W, r.v, (c.m & a.v) | (~c.m & b.v), (c.m[l] & a.v[l]) | (~c.m[l] & b.v[l]));
  return r;
}

template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> max(FloatLanes<W> a, FloatLanes<W> b) { return select(a > b, a, b); }
template <int W> FUSEDKD_LANES_INLINE FloatLanes<W> min(FloatLanes<W> a, FloatLanes<W> b) { return select(a < b, a, b); }

// ----------------------------------------------------------------------------- across lanes (fixed order)
// Pairwise trees: lanes l and l + W/2 combine first, then l and l + W/4, …; the order depends only
// on W. With vector extensions each level is one add (or max) of the register's two halves.
namespace lanes_detail {
template <int W, class Op> FUSEDKD_LANES_INLINE float fold_halves(FloatLanes<W> a, Op op) {
  if constexpr (W == 1) {
    return a.v[0];
  } else {
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
    FloatLanes<W / 2> lo, hi;
    std::memcpy(&lo.v, &a.v, sizeof lo.v);
    std::memcpy(&hi.v, reinterpret_cast<const char*>(&a.v) + sizeof lo.v, sizeof hi.v);
#else
    FloatLanes<W / 2> lo, hi;
    for (int l = 0; l < W / 2; ++l) lo.v[l] = a.v[l], hi.v[l] = a.v[l + W / 2];
#endif
    return fold_halves<W / 2>(op(lo, hi), op);
  }
}
}  // namespace lanes_detail

template <int W> FUSEDKD_LANES_INLINE float hsum(FloatLanes<W> a) {
  return lanes_detail::fold_halves<W>(a, [](auto x, auto y) FUSEDKD_LANES_INLINE_LAMBDA { return x + y; });
}
template <int W> FUSEDKD_LANES_INLINE float hmax(FloatLanes<W> a) {
  return lanes_detail::fold_halves<W>(a, [](auto x, auto y) FUSEDKD_LANES_INLINE_LAMBDA { return max(x, y); });
}

}  // namespace fusedkd::cpu

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
#pragma GCC diagnostic pop
#endif
