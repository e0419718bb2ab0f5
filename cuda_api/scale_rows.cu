// The backward's gradient scaling on the GPU, for every gradient dtype.
#include <fusedkd/cuda/scale_rows.cuh>

#include "api.hpp"
#include "dispatch.cuh"

namespace fusedkd::kernels {

void scale_rows(const ScaleCall& c) {
  detail::dispatch_one(c.grad_dtype, "grad", [&](auto tg) {
    using T = typename decltype(tg)::type;
    using A = acc_t<T>;
    cuda::scale_rows<T, A>(static_cast<T*>(c.grad), c.grad_row_stride, c.rows, c.cols,
                           RowFactors<A>{static_cast<const A*>(c.factor), c.factor_stride},
                           static_cast<cudaStream_t>(c.stream));
  });
}

}  // namespace fusedkd::kernels
