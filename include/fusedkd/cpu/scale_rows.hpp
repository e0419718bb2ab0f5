// CPU executor of the gradient scaling in scale_rows.hpp, over a range of rows (callers split the
// rows across threads).
#pragma once

#include <cstdint>

#include "../scale_rows.hpp"

namespace fusedkd::cpu {

// g[i, j] ← f(i) · g[i, j] for begin ≤ i < end, 0 ≤ j < cols; rows whose factor is 1 untouched.
template <class T, class A>
void scale_rows(T* g, std::int64_t row_stride, std::int64_t cols, RowFactors<A> f, std::int64_t begin,
                std::int64_t end) {
  for (std::int64_t i = begin; i < end; ++i) {
    const A fi = f(i);
    if (fi == A(1)) continue;
    T* row = g + i * row_stride;
    for (std::int64_t j = 0; j < cols; ++j) row[j] = scale_elem(row[j], fi);
  }
}

}  // namespace fusedkd::cpu
