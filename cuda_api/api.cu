// Non-template parts of the type-erased API.
#include "api.hpp"

namespace fusedkd::kernels {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
  }
  return "an unknown dtype";
}

}  // namespace fusedkd::kernels
