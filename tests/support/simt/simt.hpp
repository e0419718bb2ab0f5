// fusedkd's SIMT emulator: runs the CUDA executor's kernels (include/fusedkd/cuda) as host code,
// so that CI, which has no GPU, executes every kernel and checks it against the CPU executor.
//
// Model (docs/cuda.md, "Emulation build"):
//   - every CUDA thread of a block is a fiber with its own stack; the blocks of a launch run one
//     after another on the calling OS thread (in a seeded random order when a schedule seed is set);
//   - a fiber runs until it reaches a synchronization point (__syncthreads, a warp shuffle) or
//     returns; the scheduler then resolves the barriers and shuffles that every required thread
//     has reached, and runs the released fibers again (in a seeded random order per interval);
//   - a barrier or full-mask shuffle that some required thread never reaches (it exited, or waits
//     elsewhere) is reported with kernel, block, thread and source line and fails the launch:
//     cudaGetLastError() returns cudaErrorLaunchFailure, never a hang;
//   - static shared memory (FUSEDKD_SHARED in cuda/common.cuh) is allocated per block at its
//     exact size, filled with 0xff bytes (NaN for floats) and freed when the block ends; device
//     memory is host memory allocated at its exact size (so AddressSanitizer sees every overrun)
//     and filled with 0xff bytes, like an uninitialized cudaMalloc.
// It does not model timing, the memory model (weak ordering, caches, __ldg coherence), warp
// divergence inside an interval, or nvcc's code generation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

// ----------------------------------------------------------------------------- CUDA vector types

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

struct CUstream_st;
typedef CUstream_st* cudaStream_t;

namespace fusedkd::simt {

// What threadIdx, blockIdx, blockDim and gridDim read inside a kernel.
struct ThreadContext {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};

// Hardware limits the emulator enforces at launch (those of every GPU since sm_70).
struct Limits {
  static constexpr unsigned kWarpSize = 32;
  static constexpr unsigned kMaxThreadsPerBlock = 1024;
  static constexpr unsigned kMaxBlockDimXY = 1024;
  static constexpr unsigned kMaxBlockDimZ = 64;
  static constexpr unsigned kMaxGridDimX = 0x7fffffffu;
  static constexpr unsigned kMaxGridDimYZ = 65535;
  static constexpr std::size_t kMaxStaticSharedBytes = 48 * 1024;  // without the dynamic opt-in
};

// Schedule seed: 0 runs blocks and threads in index order; any other value shuffles the block order
// of every launch and the thread order of every barrier interval, reproducibly for that seed.
// The initial value comes from the environment variable FUSEDKD_SIMT_SEED (default 0).
void set_schedule_seed(std::uint64_t seed);
std::uint64_t schedule_seed();

// Number of kernel launches run so far on this OS thread (for the emulator's own tests).
std::uint64_t launch_count();

// The message of the last failed launch on this OS thread ("" if none).
const std::string& last_failure();

namespace detail {

enum class ShuffleKind : int { Down = 0, Up = 1, Index = 2, Xor = 3 };

extern thread_local const ThreadContext* tls_current;

inline const ThreadContext& current() { return *tls_current; }

// Runs body(arg) once per thread of every block of the grid; on failure sets the runtime's last
// error and the failure message.
void run_grid(const char* kernel, dim3 grid, dim3 block, void (*body)(void*), void* arg);

void syncthreads(const char* file, int line);
void shuffle(ShuffleKind kind, unsigned mask, const void* in, void* out, std::size_t bytes, int arg, int width,
             const char* file, int line);
void* block_shared(const void* key, std::size_t bytes, std::size_t align, const char* name);

}  // namespace detail

// One block-shared object per declaration site (Site: a lambda type unique to the site) and block.
template <class T, class Site> T& block_shared(const char* name, Site) {
  static_assert(std::is_trivially_default_constructible<T>::value && std::is_trivially_destructible<T>::value,
                "__shared__ variables must be trivially constructible and destructible");
  static const char key = 0;
  return *static_cast<T*>(detail::block_shared(&key, sizeof(T), alignof(T), name));
}

// kernel<<<grid, block, 0, stream>>>(args...): every thread calls kernel with its own copy of args.
template <class... P>
void launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t, P... args) {
  struct Call {
    void (*kernel)(P...);
    std::tuple<P...> args;
    static void run(void* self) {
      Call& c = *static_cast<Call*>(self);
      std::apply(c.kernel, c.args);
    }
  } call{kernel, std::tuple<P...>(std::move(args)...)};
  detail::run_grid(name, grid, block, &Call::run, &call);
}

}  // namespace fusedkd::simt
