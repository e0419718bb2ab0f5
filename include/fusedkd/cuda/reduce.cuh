// Warp / sub-warp / block reductions of any mergeable state (a loss's Stats, RowMoments, sums):
// the state is moved between lanes 32 bits at a time and combined with its own merge().
//
// Every reduction is a fixed tree that ends in one lane (or one thread of the block) and is then
// broadcast, so every participating thread holds bit-identical results and the outcome does
// not depend on scheduling: runs are deterministic for a given launch configuration.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

namespace fusedkd::cuda {

constexpr unsigned kFullMask = 0xffffffffu;

// __shfl_down_sync / __shfl_sync of a trivially copyable struct, word by word.
template <class T> __device__ __forceinline__ T shfl_down_any(const T& v, unsigned delta, int width) {
  constexpr int W = int((sizeof(T) + 3) / 4);
  std::uint32_t in[W], out[W];
  memcpy(in, &v, sizeof(T));
#pragma unroll
  for (int i = 0; i < W; ++i) out[i] = __shfl_down_sync(kFullMask, in[i], delta, width);
  T r;
  memcpy(&r, out, sizeof(T));
  return r;
}

template <class T> __device__ __forceinline__ T shfl_any(const T& v, int src_lane, int width) {
  constexpr int W = int((sizeof(T) + 3) / 4);
  std::uint32_t in[W], out[W];
  memcpy(in, &v, sizeof(T));
#pragma unroll
  for (int i = 0; i < W; ++i) out[i] = __shfl_sync(kFullMask, in[i], src_lane, width);
  T r;
  memcpy(&r, out, sizeof(T));
  return r;
}

// Merge of two states (the policy's own merge) and of plain numbers.
template <class T> __device__ __forceinline__ void merge_into(T& a, const T& b) { a.merge(b); }
__device__ __forceinline__ void merge_into(float& a, const float& b) { a += b; }
__device__ __forceinline__ void merge_into(double& a, const double& b) { a += b; }
__device__ __forceinline__ void merge_into(long long& a, const long long& b) { a += b; }

// Reduction over groups of `width` consecutive lanes (width a power of two ≤ 32); every lane of
// the warp must call it (full mask). The result is in the group's first lane.
template <class T> __device__ __forceinline__ T group_reduce(T v, int lane_in_group, int width) {
  for (int off = width >> 1; off > 0; off >>= 1) {
    const T o = shfl_down_any(v, unsigned(off), width);
    if (lane_in_group < off) merge_into(v, o);
  }
  return v;
}

// Reduction over a group of lanes, result broadcast to every lane of the group.
template <class T> __device__ __forceinline__ T group_all_reduce(T v, int lane_in_group, int width) {
  v = group_reduce(v, lane_in_group, width);
  return width > 1 ? shfl_any(v, 0, width) : v;
}

// Shared scratch for block_all_reduce: 33 slots of the largest state a kernel reduces.
template <std::size_t Bytes> struct alignas(16) BlockReduceStorage {
  unsigned char raw[33 * ((Bytes + 15) / 16) * 16];
  template <class T> __device__ __forceinline__ T* slots() {
    static_assert(sizeof(T) <= ((Bytes + 15) / 16) * 16, "BlockReduceStorage too small for this state");
    return reinterpret_cast<T*>(raw);
  }
};

// Reduction over the whole block (blockDim.x a multiple of 32, at most 1024), broadcast to every
// thread. Fixed order: lanes within a warp, then warps 0..n-1. Ends with a barrier, so the same
// storage can be reused by the next call.
template <class T, class Storage> __device__ __forceinline__ T block_all_reduce(T v, Storage& storage) {
  T* slot = storage.template slots<T>();
  const int lane = int(threadIdx.x & 31), warp = int(threadIdx.x >> 5), warps = int(blockDim.x >> 5);
  v = group_reduce(v, lane, 32);
  if (lane == 0) slot[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = lane < warps ? slot[lane] : T{};
    w = group_reduce(w, lane, 32);
    if (lane == 0) slot[32] = w;
  }
  __syncthreads();
  const T r = slot[32];
  __syncthreads();
  return r;
}

// Workers: who processes a row. A group of `width` lanes of one warp (small C, several rows per
// warp) or a whole block (one row, or one column chunk of a row, per block). Both stride over
// columns with `lane` and `width` and reduce with all_reduce().
struct GroupWorker {
  int lane;
  int width;
  template <class T> __device__ __forceinline__ T all_reduce(const T& v) const {
    return group_all_reduce(v, lane, width);
  }
};

template <class Storage> struct BlockWorker {
  int lane;
  int width;
  Storage* storage;
  template <class T> __device__ __forceinline__ T all_reduce(const T& v) const { return block_all_reduce(v, *storage); }
};

}  // namespace fusedkd::cuda
