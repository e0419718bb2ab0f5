// CPU executor of the gradient scaling in scale_rows.hpp, over a range of rows (callers split the
// rows across threads). float, half and bfloat16 rows run on SIMD lanes (AVX2 where the CPU has
// it): f · g in fp32, rounded once, bit for bit the scalar scale_elem; the last C mod W columns
// scalar (a remainder must not be scaled twice, so no overlapping last block).
#pragma once

#include <cstdint>
#include <type_traits>

#include "../scale_rows.hpp"
#include "isa.hpp"
#include "lanes.hpp"

namespace fusedkd::cpu {

namespace detail {

template <class T, class A> void scale_rows_scalar(T* g, std::int64_t row_stride, std::int64_t cols, RowFactors<A> f,
                                                   std::int64_t begin, std::int64_t end) {
  for (std::int64_t i = begin; i < end; ++i) {
    const A fi = f(i);
    if (fi == A(1)) continue;
    T* row = g + i * row_stride;
    for (std::int64_t j = 0; j < cols; ++j) row[j] = scale_elem(row[j], fi);
  }
}

#if FUSEDKD_CPU_VECTOR_EXTENSIONS
template <int W, class T> FUSEDKD_LANES_INLINE void scale_rows_lanes(T* g, std::int64_t row_stride, std::int64_t cols,
                                                                    RowFactors<float> f, std::int64_t begin,
                                                                    std::int64_t end) {
  for (std::int64_t i = begin; i < end; ++i) {
    const float fi = f(i);
    if (fi == 1.0f) continue;
    T* row = g + i * row_stride;
    const FloatLanes<W> fl(fi);
    std::int64_t j = 0;
    for (; j + W <= cols; j += W) store_lanes<W>(row + j, load_lanes<W>(row + j) * fl);
    for (; j < cols; ++j) row[j] = scale_elem(row[j], fi);
  }
}
#endif

}  // namespace detail

// g[i, j] ← f(i) · g[i, j] for begin ≤ i < end, 0 ≤ j < cols; rows whose factor is 1 untouched.
template <class T, class A>
void scale_rows(T* g, std::int64_t row_stride, std::int64_t cols, RowFactors<A> f, std::int64_t begin,
                std::int64_t end) {
#if FUSEDKD_CPU_VECTOR_EXTENSIONS
  if constexpr (is_lane_element<T> && std::is_same_v<A, float>) {
    detail::with_lanes([&](auto w) FUSEDKD_LANES_INLINE_LAMBDA {
      detail::scale_rows_lanes<decltype(w)::value>(g, row_stride, cols, f, begin, end);
    });
    return;
  }
#endif
  detail::scale_rows_scalar(g, row_stride, cols, f, begin, end);
}

}  // namespace fusedkd::cpu
