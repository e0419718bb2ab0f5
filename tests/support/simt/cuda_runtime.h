// <cuda_runtime.h> of the SIMT emulation build (-DFUSEDKD_SIMT=ON): the CUDA surface that the
// executor, its tests and its example use, as host C++ over the emulator in simt.hpp. Only this
// directory is on the include path of an emulation target, so the project's headers compile
// unchanged with g++. Streams are synchronous (work runs when it is enqueued), device memory is
// host memory, and graph capture is reported as not emulated (cudaErrorNotSupported).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "simt.hpp"

#define FUSEDKD_SIMT_RUNTIME 1

// ----------------------------------------------------------------------------- keywords

#define __host__
#define __device__
#define __global__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
// Shared memory is declared with FUSEDKD_SHARED(name, Type) (cuda/common.cuh), which gives the
// emulator one object per block; a bare __shared__ would be one object per process.
#define __shared__ static_assert(false, "use FUSEDKD_SHARED(name, Type) for shared memory in fusedkd kernels");

#define threadIdx (::fusedkd::simt::detail::current().thread_idx)
#define blockIdx (::fusedkd::simt::detail::current().block_idx)
#define blockDim (::fusedkd::simt::detail::current().block_dim)
#define gridDim (::fusedkd::simt::detail::current().grid_dim)
constexpr int warpSize = int(::fusedkd::simt::Limits::kWarpSize);

// ----------------------------------------------------------------------------- device intrinsics

#define __syncthreads() ::fusedkd::simt::detail::syncthreads(__FILE__, __LINE__)

template <class T> inline T __ldg(const T* p) { return *p; }

// Atomics: the fibers of a launch run one at a time on one OS thread and switch only at barriers and
// shuffles, so a read-modify-write is atomic as it stands. Returns the old value, as CUDA's.
inline unsigned atomicOr(unsigned* address, unsigned value) {
  const unsigned old = *address;
  *address = old | value;
  return old;
}

namespace fusedkd::simt::detail {
template <class T> inline T shuffle_value(ShuffleKind kind, unsigned mask, T v, int arg, int width, const char* file,
                                          int line) {
  static_assert(std::is_trivially_copyable<T>::value && (sizeof(T) == 4 || sizeof(T) == 8),
                "warp shuffles move 4- or 8-byte values");
  T out;
  shuffle(kind, mask, &v, &out, sizeof(T), arg, width, file, line);
  return out;
}
}  // namespace fusedkd::simt::detail

template <class T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize, const char* file = __builtin_FILE(),
                     int line = __builtin_LINE()) {
  return ::fusedkd::simt::detail::shuffle_value(::fusedkd::simt::detail::ShuffleKind::Index, mask, var, src_lane,
                                                width, file, line);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                          const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::fusedkd::simt::detail::shuffle_value(::fusedkd::simt::detail::ShuffleKind::Down, mask, var, int(delta),
                                                width, file, line);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize, const char* file = __builtin_FILE(),
                        int line = __builtin_LINE()) {
  return ::fusedkd::simt::detail::shuffle_value(::fusedkd::simt::detail::ShuffleKind::Up, mask, var, int(delta), width,
                                                file, line);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                         const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::fusedkd::simt::detail::shuffle_value(::fusedkd::simt::detail::ShuffleKind::Xor, mask, var, lane_mask,
                                                width, file, line);
}

// ----------------------------------------------------------------------------- runtime API

enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotSupported = 801,
  cudaErrorLaunchFailure = 719,
};
typedef cudaError_t cudaError;

enum cudaMemcpyKind : int {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaStreamCaptureMode : int {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};

constexpr unsigned cudaStreamDefault = 0x0;
constexpr unsigned cudaStreamNonBlocking = 0x1;
constexpr unsigned cudaEventDefault = 0x0;

struct CUevent_st;
typedef CUevent_st* cudaEvent_t;
struct CUgraph_st;
typedef CUgraph_st* cudaGraph_t;
struct CUgraphExec_st;
typedef CUgraphExec_st* cudaGraphExec_t;

struct cudaDeviceProp {
  char name[256];
  std::size_t totalGlobalMem;
  std::size_t sharedMemPerBlock;
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int multiProcessorCount;
  int major;
  int minor;
  int l2CacheSize;
};

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceSynchronize();

cudaError_t cudaMalloc(void** ptr, std::size_t bytes);
template <class T> inline cudaError_t cudaMalloc(T** ptr, std::size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(ptr), bytes);
}
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* dst, int value, std::size_t bytes);
cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t stream = nullptr);

cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);

cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

// Graph capture is not emulated: every call returns cudaErrorNotSupported.
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
