// Device-side basics of the CUDA executor: error checking, element loads/stores (scalar and
// 16-byte vectors), label reads. Header-only, plain nvcc (no torch).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "../config.hpp"
#include "../error.hpp"
#include "../numeric.hpp"

// Shared memory of a kernel: FUSEDKD_SHARED(name, Type) declares `Type name` in the block's shared
// memory (`__shared__ Type name;` under nvcc; in the emulation build one object per block at its
// exact size, poisoned, freed when the block ends). Type may contain commas and be an array type.
namespace fusedkd::cuda::detail {
template <class T> using shared_type = T;
}  // namespace fusedkd::cuda::detail
#if defined(FUSEDKD_SIMT)
#define FUSEDKD_SHARED(name, ...) \
  ::fusedkd::cuda::detail::shared_type<__VA_ARGS__>& name = ::fusedkd::simt::block_shared<__VA_ARGS__>(#name, [] {})
#define FUSEDKD_NOINLINE __attribute__((noinline))
#else
#define FUSEDKD_SHARED(name, ...) __shared__ ::fusedkd::cuda::detail::shared_type<__VA_ARGS__> name
#define FUSEDKD_NOINLINE __noinline__
#endif

namespace fusedkd::cuda {

// Throws fusedkd::Error for a failed CUDA runtime call.
inline void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw Error(std::string("fusedkd: CUDA error in ") + what + ": " + cudaGetErrorName(e) + ": " +
                cudaGetErrorString(e));
}

// Labels as the device sees them: int64 or int32, read through a runtime flag (one instantiation
// serves both). data == nullptr: a loss without labels.
struct DeviceLabels {
  const void* data = nullptr;
  bool is_int32 = false;
  std::int64_t ignore_index = -100;
};

__device__ __forceinline__ long long read_label(const void* p, int is_int32, std::int64_t i) {
  return is_int32 ? (long long)__ldg(static_cast<const int*>(p) + i)
                  : (long long)__ldg(reinterpret_cast<const long long*>(p) + i);
}

// What a row's label means for the executor.
enum class RowKind : int { Normal = 0, Ignored = 1, BadLabel = 2, Absent = 3 };

// ----------------------------------------------------------------------------- element access

// Read-only (non-coherent) loads of one element as its accumulation type.
template <class T> struct ElemIO;
template <> struct ElemIO<float> {
  __device__ static __forceinline__ float load(const float* p) { return __ldg(p); }
};
template <> struct ElemIO<double> {
  __device__ static __forceinline__ double load(const double* p) { return __ldg(p); }
};
template <> struct ElemIO<half_t> {
  __device__ static __forceinline__ float load(const half_t* p) {
    return to_acc(half_t{__ldg(reinterpret_cast<const unsigned short*>(p))});
  }
};
template <> struct ElemIO<bfloat16_t> {
  __device__ static __forceinline__ float load(const bfloat16_t* p) {
    return to_acc(bfloat16_t{__ldg(reinterpret_cast<const unsigned short*>(p))});
  }
};

template <class T> __device__ __forceinline__ auto load_elem(const T* p) { return ElemIO<T>::load(p); }

// K consecutive elements from a 16-byte aligned address, as K*sizeof(T)/16 uint4 loads.
template <int K, class T, class A> __device__ __forceinline__ void load_vec(const T* p, A (&out)[K]) {
  static_assert((K * sizeof(T)) % 16 == 0, "vector of K elements must be a whole number of 16-byte words");
  constexpr int W = int(K * sizeof(T) / 16);
  union {
    uint4 w[W];
    T e[K];
  } u;
#pragma unroll
  for (int i = 0; i < W; ++i) u.w[i] = __ldg(reinterpret_cast<const uint4*>(p) + i);
#pragma unroll
  for (int k = 0; k < K; ++k) out[k] = A(to_acc(u.e[k]));
}

// K consecutive elements to a 16-byte aligned address.
template <int K, class T, class A> __device__ __forceinline__ void store_vec(T* p, const A (&in)[K]) {
  static_assert((K * sizeof(T)) % 16 == 0, "vector of K elements must be a whole number of 16-byte words");
  constexpr int W = int(K * sizeof(T) / 16);
  union {
    uint4 w[W];
    T e[K];
  } u;
#pragma unroll
  for (int k = 0; k < K; ++k) u.e[k] = from_acc<T>(in[k]);
#pragma unroll
  for (int i = 0; i < W; ++i) reinterpret_cast<uint4*>(p)[i] = u.w[i];
}

template <class T, class A> __device__ __forceinline__ void store_elem(T* p, A v) { *p = from_acc<T>(v); }

// Elements per vector step for a pair of element types: one 16-byte load of the narrower type,
// one or more of the wider (fp32 student + bf16 teacher: 8 columns = 2 + 1 loads).
template <class TS, class TT> struct VecWidth {
  static constexpr int kMinSize = int(sizeof(TS) < sizeof(TT) ? sizeof(TS) : sizeof(TT));
  static constexpr int K = 16 / kMinSize;
};

// Whether a row-major matrix can be read with 16-byte vectors on every row: base pointer and
// row pitch in bytes both multiples of 16. A null pointer (absent output) does not constrain.
template <class T> inline bool vector_aligned(const T* base, std::int64_t row_stride, std::int64_t rows) {
  if (base == nullptr) return true;
  if (reinterpret_cast<std::uintptr_t>(base) % 16 != 0) return false;
  return rows <= 1 || (row_stride * std::int64_t(sizeof(T))) % 16 == 0;
}

template <class A> __device__ __forceinline__ A quiet_nan() { return A(NAN); }

}  // namespace fusedkd::cuda
