// Compiler portability for the shared host/device math.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define FUSEDKD_HD __host__ __device__
#else
#define FUSEDKD_HD
#endif

#define FUSEDKD_HD_INLINE FUSEDKD_HD inline

// For the per-column functions of the loss policies (push, grad): the CPU executor's SIMD paths
// are compiled for their instruction set only where these are inlined into them.
#if defined(__CUDACC__) || defined(__HIPCC__)
#define FUSEDKD_HD_FORCEINLINE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define FUSEDKD_HD_FORCEINLINE inline __attribute__((always_inline))
#else
#define FUSEDKD_HD_FORCEINLINE inline
#endif

namespace fusedkd {

// Element type used for accumulation: fp32 for fp32/fp16/bf16 inputs, fp64 for fp64.
template <class T> struct accumulate_type { using type = float; };
template <> struct accumulate_type<double> { using type = double; };
template <class T> using acc_t = typename accumulate_type<T>::type;

}  // namespace fusedkd
