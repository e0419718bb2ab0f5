// The SIMT emulator's scheduler and runtime (see simt.hpp for the model).
//
// Fibers: on x86-64 a 10-instruction context switch of our own (callee-saved registers, the x87
// control word and MXCSR, then the stack pointer), about 100 times cheaper than glibc's
// swapcontext, which makes a system call per switch to save the signal mask; the emulated grid
// switches fibers at every barrier and every shuffle of every thread, tens of millions of times
// per test run. Elsewhere ucontext. Boost.Context would do the same but adds a package that
// users of a header-only library would then need for the tests. Under AddressSanitizer every
// switch is announced with __sanitizer_start/finish_switch_fiber.
#include "cuda_runtime.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define FUSEDKD_SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUSEDKD_SIMT_ASAN 1
#endif
#endif
#if defined(FUSEDKD_SIMT_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__x86_64__)
// fusedkd_simt_switch(save, load): pushes the callee-saved state, stores the stack pointer in
// *save, loads `load` as the stack pointer and pops the state saved there.
extern "C" void fusedkd_simt_switch(void** save, void* load);
asm(R"(
  .pushsection .text
  .p2align 4
  .globl fusedkd_simt_switch
  .hidden fusedkd_simt_switch
  .type fusedkd_simt_switch, @function
fusedkd_simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $16, %rsp
  fnstcw (%rsp)
  stmxcsr 8(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  fldcw (%rsp)
  ldmxcsr 8(%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size fusedkd_simt_switch, .-fusedkd_simt_switch
  .popsection
)");
#endif

namespace fusedkd::simt {

namespace detail {
thread_local const ThreadContext* tls_current = nullptr;
}  // namespace detail

namespace {

using detail::ShuffleKind;

constexpr std::size_t kPage = 4096;
constexpr unsigned char kPoison = 0xff;  // NaN in every float format, -1 in every integer
constexpr std::size_t kExitFramesBytes = 64 * 1024;  // bound on a finished fiber's last frames

std::size_t stack_bytes() {
  static const std::size_t bytes = [] {
    const char* kb = std::getenv("FUSEDKD_SIMT_STACK_KB");
    const long v = kb ? std::atol(kb) : 0;
    return std::size_t(v > 0 ? v : 256) * 1024;
  }();
  return bytes;
}

bool abort_on_failure() {
  static const bool yes = [] {
    const char* v = std::getenv("FUSEDKD_SIMT_ABORT");
    return v != nullptr && v[0] == '1';
  }();
  return yes;
}

std::uint64_t seed_from_env() {
  const char* v = std::getenv("FUSEDKD_SIMT_SEED");
  return v ? std::strtoull(v, nullptr, 0) : 0;
}

// A fiber stack: mmap'd with a PROT_NONE guard page below it (a stack overflow faults at once).
struct Stack {
  char* base = nullptr;  // lowest usable byte
  std::size_t size = 0;
};

Stack map_stack() {
  const std::size_t size = stack_bytes();
  void* p = mmap(nullptr, size + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "fusedkd simt: cannot map a %zu-byte fiber stack\n", size);
    std::abort();
  }
  mprotect(p, kPage, PROT_NONE);
  return Stack{static_cast<char*>(p) + kPage, size};
}

enum class Status : unsigned char { Ready, Barrier, Shuffle, Done, Failed };

struct ShuffleOp {
  ShuffleKind kind;
  unsigned mask;
  int arg;
  int width;
  std::size_t bytes;
  unsigned char in[8];
  unsigned char out[8];
  const char* file;
  int line;
};

struct Fiber {
  void* sp = nullptr;
  Stack stack;
  ThreadContext ctx{};
  Status status = Status::Ready;
  const char* site_file = nullptr;  // barrier: where it waits
  int site_line = 0;
  ShuffleOp shfl{};
#if !defined(__x86_64__)
  ucontext_t uc;
#endif
  void* fake_stack = nullptr;  // AddressSanitizer's fake stack of this fiber
  bool dirty_stack = false;    // abandoned mid-kernel: its shadow must be cleared before reuse
};

struct SharedSlot {
  const void* key;
  void* ptr;
};

// Per OS thread: the fiber pool and the block being run.
struct Engine {
  std::vector<Fiber> fibers;
  std::vector<SharedSlot> shared;
  std::size_t shared_bytes = 0;
  void (*body)(void*) = nullptr;
  void* arg = nullptr;
  int current = -1;
  unsigned threads = 0;
  bool failed = false;
  std::string failure;
  void* sched_sp = nullptr;
#if !defined(__x86_64__)
  ucontext_t sched_uc;
#endif
  void* sched_fake_stack = nullptr;  // AddressSanitizer's view of the scheduler's (host) stack
  const void* sched_stack_bottom = nullptr;
  std::size_t sched_stack_size = 0;
  std::uint64_t seed = seed_from_env();
  std::uint64_t launches = 0;
};

thread_local Engine tls_engine;

// Runtime error state (the runtime API's "last error"), per OS thread like CUDA's.
thread_local cudaError_t tls_last_error = cudaSuccess;
thread_local std::string tls_last_failure;
thread_local std::string tls_error_text;

std::string format_dim(const uint3& v) {
  std::ostringstream os;
  os << "(" << v.x << "," << v.y << "," << v.z << ")";
  return os.str();
}

const char* base_name(const char* path) {
  if (path == nullptr) return "?";
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

std::string site(const char* file, int line) { return std::string(base_name(file)) + ":" + std::to_string(line); }

std::string describe_wait(const Fiber& f) {
  switch (f.status) {
    case Status::Barrier: return "waits at __syncthreads() at " + site(f.site_file, f.site_line);
    case Status::Shuffle: {
      static const char* names[] = {"__shfl_down_sync", "__shfl_up_sync", "__shfl_sync", "__shfl_xor_sync"};
      return std::string("waits at ") + names[int(f.shfl.kind)] + " at " + site(f.shfl.file, f.shfl.line);
    }
    case Status::Done: return "has exited";
    case Status::Failed: return "failed";
    case Status::Ready: return "is runnable";
  }
  return "?";
}

// ----------------------------------------------------------------------------- context switches

[[noreturn]] void fiber_main();

void asan_start_switch(void** fake_stack_save, const void* bottom, std::size_t size) {
#if defined(FUSEDKD_SIMT_ASAN)
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#else
  (void)fake_stack_save, (void)bottom, (void)size;
#endif
}

void asan_finish_switch(void* fake_stack_save, const void** bottom_old, std::size_t* size_old) {
#if defined(FUSEDKD_SIMT_ASAN)
  __sanitizer_finish_switch_fiber(fake_stack_save, bottom_old, size_old);
#else
  (void)fake_stack_save, (void)bottom_old, (void)size_old;
#endif
}

// A fresh context on f's stack that enters fiber_main().
void prepare_fiber(Fiber& f) {
#if defined(FUSEDKD_SIMT_ASAN)
  // The last frames of the stack's previous fiber (fiber_main, yield) never returned, so their
  // redzones are still poisoned; a fiber abandoned mid-kernel may have left poison anywhere.
  const std::size_t stale = f.dirty_stack ? f.stack.size : std::min(f.stack.size, kExitFramesBytes);
  __asan_unpoison_memory_region(f.stack.base + f.stack.size - stale, stale);
#endif
  f.dirty_stack = false;
  f.fake_stack = nullptr;
#if defined(__x86_64__)
  // Layout popped by fusedkd_simt_switch: x87 CW, MXCSR | r15 r14 r13 r12 rbx rbp | return address
  // (fiber_main) | a null return address for fiber_main, so that it starts with the stack
  // alignment of a called function (rsp ≡ 8 mod 16).
  char* top = f.stack.base + f.stack.size;
  auto* slots = reinterpret_cast<std::uint64_t*>(top - 80);
  std::uint16_t cw;
  std::uint32_t mxcsr;
  asm volatile("fnstcw %0" : "=m"(cw));
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  slots[0] = cw;
  slots[1] = mxcsr;
  for (int k = 2; k < 8; ++k) slots[k] = 0;
  slots[8] = reinterpret_cast<std::uint64_t>(&fiber_main);
  slots[9] = 0;
  f.sp = slots;
#else
  getcontext(&f.uc);
  f.uc.uc_stack.ss_sp = f.stack.base;
  f.uc.uc_stack.ss_size = f.stack.size;
  f.uc.uc_link = nullptr;
  makecontext(&f.uc, reinterpret_cast<void (*)()>(&fiber_main), 0);
#endif
}


void raw_switch(void** save_sp, void* load_sp, Fiber* from_fiber, Fiber* to_fiber, Engine& e) {
#if defined(__x86_64__)
  (void)from_fiber, (void)to_fiber, (void)e;
  fusedkd_simt_switch(save_sp, load_sp);
#else
  (void)save_sp, (void)load_sp;
  swapcontext(from_fiber ? &from_fiber->uc : &e.sched_uc, to_fiber ? &to_fiber->uc : &e.sched_uc);
#endif
}

// Scheduler → fiber t; returns when the fiber blocks, exits or fails.
void resume(Engine& e, int t) {
  Fiber& f = e.fibers[std::size_t(t)];
  e.current = t;
  detail::tls_current = &f.ctx;
  asan_start_switch(&e.sched_fake_stack, f.stack.base, f.stack.size);
  raw_switch(&e.sched_sp, f.sp, nullptr, &f, e);
  asan_finish_switch(e.sched_fake_stack, nullptr, nullptr);
  detail::tls_current = nullptr;
  e.current = -1;
}

// Fiber → scheduler. `exiting`: the fiber never runs again (its fake stack is released).
void yield(Engine& e, Fiber& f, bool exiting) {
  asan_start_switch(exiting ? nullptr : &f.fake_stack, e.sched_stack_bottom, e.sched_stack_size);
  raw_switch(&f.sp, e.sched_sp, &f, nullptr, e);
  asan_finish_switch(f.fake_stack, nullptr, nullptr);
}

Engine& engine_in_kernel(const char* what) {
  Engine& e = tls_engine;
  if (e.current < 0) {
    std::fprintf(stderr, "fusedkd simt: %s called outside a kernel\n", what);
    std::abort();
  }
  return e;
}

// Marks the launch failed with `message` (the first failure wins) and leaves the fiber for good.
[[noreturn]] void fail_in_fiber(Engine& e, const std::string& message) {
  Fiber& f = e.fibers[std::size_t(e.current)];
  if (!e.failed) {
    e.failed = true;
    e.failure = message;
  }
  f.status = Status::Failed;
  f.dirty_stack = true;
  yield(e, f, /*exiting=*/true);
  std::abort();  // never resumed
}

[[noreturn]] void fiber_main() {
  Engine& e = tls_engine;
  asan_finish_switch(nullptr, &e.sched_stack_bottom, &e.sched_stack_size);
  Fiber& f = e.fibers[std::size_t(e.current)];
  try {
    e.body(e.arg);
  } catch (const std::exception& ex) {
    fail_in_fiber(e, std::string("kernel threw: ") + ex.what());
  } catch (...) {
    fail_in_fiber(e, "kernel threw an exception");
  }
  f.status = Status::Done;
  yield(e, f, /*exiting=*/true);
  std::abort();  // never resumed
}

// ----------------------------------------------------------------------------- scheduling

struct Rng {
  std::uint64_t state;
  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  template <class T> void shuffle(std::vector<T>& v) {
    for (std::size_t k = v.size(); k > 1; --k) std::swap(v[k - 1], v[std::size_t(next() % k)]);
  }
};

uint3 unflatten(unsigned k, dim3 d) { return uint3{k % d.x, (k / d.x) % d.y, k / (d.x * d.y)}; }

bool valid_width(int w) { return w >= 1 && w <= int(Limits::kWarpSize) && (w & (w - 1)) == 0; }

// The shuffle of warp `w`, once each of its lanes waits at one: checks that they agree and
// computes every lane's result with CUDA's rules. Returns false (and sets the failure) on misuse.
bool resolve_shuffle(Engine& e, unsigned w, std::string& failure) {
  const unsigned lo = w * Limits::kWarpSize, hi = std::min(lo + Limits::kWarpSize, e.threads);
  const Fiber& first = e.fibers[lo];
  const ShuffleOp& op = first.shfl;
  const unsigned lanes = hi - lo;
  const unsigned full = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
  for (unsigned t = lo; t < hi; ++t) {
    const Fiber& f = e.fibers[t];
    if (f.status != Status::Shuffle) {
      failure = "warp " + std::to_string(w) + ": thread " + format_dim(first.ctx.thread_idx) + " " +
                describe_wait(first) + ", but thread " + format_dim(f.ctx.thread_idx) + " " + describe_wait(f) +
                " (a full-mask shuffle needs every lane of the warp)";
      return false;
    }
    const ShuffleOp& o = f.shfl;
    if (o.kind != op.kind || o.mask != op.mask || o.width != op.width || o.bytes != op.bytes || o.line != op.line ||
        std::strcmp(o.file, op.file) != 0) {
      failure = "warp " + std::to_string(w) + ": lanes disagree on the shuffle: thread " +
                format_dim(first.ctx.thread_idx) + " " + describe_wait(first) + " (width " + std::to_string(op.width) +
                "), thread " + format_dim(f.ctx.thread_idx) + " " + describe_wait(f) + " (width " +
                std::to_string(o.width) + ")";
      return false;
    }
  }
  if (op.mask != full) {
    failure = "warp " + std::to_string(w) + ": shuffle mask 0x" + [&] {
      char buf[16];
      std::snprintf(buf, sizeof buf, "%08x", op.mask);
      return std::string(buf);
    }() + " at " + site(op.file, op.line) + " does not name exactly the warp's " + std::to_string(lanes) +
              " threads (only full-warp shuffles are emulated)";
    return false;
  }
  if (!valid_width(op.width)) {
    failure = "shuffle width " + std::to_string(op.width) + " at " + site(op.file, op.line) +
              " is not a power of two in [1, 32]";
    return false;
  }
  const int width = op.width;
  for (unsigned t = lo; t < hi; ++t) {
    const int lane = int(t - lo);
    const int seg = lane & ~(width - 1), in_seg = lane & (width - 1);
    int src = lane;
    switch (op.kind) {
      case ShuffleKind::Down: src = in_seg + op.arg < width ? lane + op.arg : lane; break;
      case ShuffleKind::Up: src = in_seg >= op.arg ? lane - op.arg : lane; break;
      case ShuffleKind::Index: src = seg + (op.arg & (width - 1)); break;
      case ShuffleKind::Xor: {
        const int x = lane ^ op.arg;
        src = x < seg + width ? x : lane;  // lanes of later segments are not visible
        break;
      }
    }
    Fiber& f = e.fibers[t];
    std::memcpy(f.shfl.out, e.fibers[lo + unsigned(src)].shfl.in, op.bytes);
  }
  for (unsigned t = lo; t < hi; ++t) e.fibers[t].status = Status::Ready;
  return true;
}

// Runs one block to completion. Returns false with e.failure set on a failure.
bool run_block(Engine& e, uint3 block_idx, dim3 grid, dim3 block, Rng* rng) {
  const unsigned n = block.x * block.y * block.z;
  e.threads = n;
  while (e.fibers.size() < n) {
    e.fibers.emplace_back();
    e.fibers.back().stack = map_stack();
  }
  for (unsigned t = 0; t < n; ++t) {
    Fiber& f = e.fibers[t];
    f.ctx = ThreadContext{unflatten(t, block), block_idx, block, grid};
    f.status = Status::Ready;
    prepare_fiber(f);
  }
  std::vector<int> ready;
  ready.reserve(n);
  const unsigned warps = (n + Limits::kWarpSize - 1) / Limits::kWarpSize;
  bool ok = true;
  while (ok) {
    ready.clear();
    for (unsigned t = 0; t < n; ++t)
      if (e.fibers[t].status == Status::Ready) ready.push_back(int(t));
    if (!ready.empty()) {
      if (rng) rng->shuffle(ready);
      for (int t : ready) {
        resume(e, t);
        if (e.failed) {
          ok = false;
          break;
        }
      }
      continue;
    }
    // Nobody can run: release the shuffles whose warps are complete, else the barrier.
    bool progressed = false;
    unsigned done = 0, at_barrier = 0, first_waiting = n;
    for (unsigned t = 0; t < n; ++t) {
      const Status s = e.fibers[t].status;
      done += s == Status::Done;
      at_barrier += s == Status::Barrier;
      if (s != Status::Done && first_waiting == n) first_waiting = t;
    }
    if (done == n) break;
    for (unsigned w = 0; w < warps && ok; ++w) {
      const unsigned lo = w * Limits::kWarpSize, hi = std::min(lo + Limits::kWarpSize, n);
      bool all_shuffle = true;
      for (unsigned t = lo; t < hi; ++t) all_shuffle &= e.fibers[t].status == Status::Shuffle;
      if (!all_shuffle) continue;
      std::string why;
      if (resolve_shuffle(e, w, why)) {
        progressed = true;
      } else {
        e.failed = true;
        e.failure = why;
        ok = false;
      }
    }
    if (!ok || progressed) continue;
    if (at_barrier == n) {
      const Fiber& f0 = e.fibers[0];
      for (unsigned t = 1; t < n; ++t) {
        const Fiber& f = e.fibers[t];
        if (f.site_line != f0.site_line || std::strcmp(f.site_file, f0.site_file) != 0) {
          e.failed = true;
          e.failure = "divergent barriers: thread " + format_dim(f0.ctx.thread_idx) + " " + describe_wait(f0) +
                      ", thread " + format_dim(f.ctx.thread_idx) + " " + describe_wait(f);
          ok = false;
          break;
        }
      }
      if (ok)
        for (unsigned t = 0; t < n; ++t) e.fibers[t].status = Status::Ready;
      continue;
    }
    // Deadlock: describe one waiting thread and one that keeps it waiting.
    const Fiber& waiting = e.fibers[first_waiting];
    const Fiber* culprit = nullptr;
    for (unsigned t = 0; t < n && !culprit; ++t) {
      const Fiber& f = e.fibers[t];
      if (waiting.status == Status::Barrier && f.status != Status::Barrier) culprit = &f;
      if (waiting.status == Status::Shuffle && f.status != Status::Shuffle &&
          t / Limits::kWarpSize == first_waiting / Limits::kWarpSize)
        culprit = &f;
    }
    if (!culprit)
      for (unsigned t = 0; t < n && !culprit; ++t)
        if (e.fibers[t].status != waiting.status) culprit = &e.fibers[t];
    e.failed = true;
    e.failure = "deadlock: thread " + format_dim(waiting.ctx.thread_idx) + " " + describe_wait(waiting) +
                (culprit ? ", but thread " + format_dim(culprit->ctx.thread_idx) + " " + describe_wait(*culprit) : "");
    ok = false;
  }
  if (!ok) {
    for (unsigned t = 0; t < n; ++t)
      if (e.fibers[t].status != Status::Done) e.fibers[t].dirty_stack = true;
  }
  for (SharedSlot& s : e.shared) std::free(s.ptr);
  e.shared.clear();
  e.shared_bytes = 0;
  return ok;
}

void set_error(cudaError_t err, const std::string& message) {
  tls_last_error = err;
  tls_last_failure = message;
  std::fprintf(stderr, "fusedkd simt: %s\n", message.c_str());
  if (abort_on_failure()) std::abort();
}

std::string dim_text(dim3 d) { return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")"; }

}  // namespace

// ----------------------------------------------------------------------------- public API

void set_schedule_seed(std::uint64_t seed) { tls_engine.seed = seed; }
std::uint64_t schedule_seed() { return tls_engine.seed; }
std::uint64_t launch_count() { return tls_engine.launches; }
const std::string& last_failure() { return tls_last_failure; }

namespace detail {

void run_grid(const char* kernel, dim3 grid, dim3 block, void (*body)(void*), void* arg) {
  Engine& e = tls_engine;
  if (e.current >= 0) {
    std::fprintf(stderr, "fusedkd simt: kernel %s launched from inside a kernel (not emulated)\n", kernel);
    std::abort();
  }
  ++e.launches;
  const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  if (block.x == 0 || block.y == 0 || block.z == 0 || block.x > Limits::kMaxBlockDimXY ||
      block.y > Limits::kMaxBlockDimXY || block.z > Limits::kMaxBlockDimZ || threads > Limits::kMaxThreadsPerBlock ||
      grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > Limits::kMaxGridDimX || grid.y > Limits::kMaxGridDimYZ ||
      grid.z > Limits::kMaxGridDimYZ) {
    set_error(cudaErrorInvalidConfiguration, std::string("kernel ") + kernel + ": invalid launch configuration grid " +
                                                 dim_text(grid) + ", block " + dim_text(block) +
                                                 " (at most 1024 threads per block, block dims 1024 x 1024 x 64, "
                                                 "grid dims 2^31-1 x 65535 x 65535)");
    return;
  }
  e.body = body;
  e.arg = arg;
  e.failed = false;
  e.failure.clear();
  const unsigned long long blocks = (unsigned long long)grid.x * grid.y * grid.z;
  Rng rng{e.seed ^ (e.launches * 0x2545f4914f6cdd1dull)};
  Rng* order_rng = e.seed != 0 ? &rng : nullptr;
  std::vector<unsigned long long> order;
  if (order_rng) {
    order.resize(blocks);
    for (unsigned long long k = 0; k < blocks; ++k) order[k] = k;
    order_rng->shuffle(order);
  }
  const dim3 gdim = grid;
  for (unsigned long long k = 0; k < blocks; ++k) {
    const unsigned long long b = order_rng ? order[k] : k;
    const uint3 bid{unsigned(b % grid.x), unsigned((b / grid.x) % grid.y), unsigned(b / (grid.x * grid.y))};
    if (!run_block(e, bid, gdim, block, order_rng)) {
      set_error(cudaErrorLaunchFailure, std::string("kernel ") + kernel + ", block " + format_dim(bid) + ": " + e.failure);
      break;
    }
  }
}

void syncthreads(const char* file, int line) {
  Engine& e = engine_in_kernel("__syncthreads");
  Fiber& f = e.fibers[std::size_t(e.current)];
  f.status = Status::Barrier;
  f.site_file = file;
  f.site_line = line;
  yield(e, f, false);
}

void shuffle(ShuffleKind kind, unsigned mask, const void* in, void* out, std::size_t bytes, int arg, int width,
             const char* file, int line) {
  Engine& e = engine_in_kernel("a warp shuffle");
  Fiber& f = e.fibers[std::size_t(e.current)];
  f.status = Status::Shuffle;
  f.shfl.kind = kind;
  f.shfl.mask = mask;
  f.shfl.arg = arg;
  f.shfl.width = width;
  f.shfl.bytes = bytes;
  f.shfl.file = file;
  f.shfl.line = line;
  std::memcpy(f.shfl.in, in, bytes);
  yield(e, f, false);
  std::memcpy(out, f.shfl.out, bytes);
}

void* block_shared(const void* key, std::size_t bytes, std::size_t align, const char* name) {
  Engine& e = engine_in_kernel("shared memory");
  for (const SharedSlot& s : e.shared)
    if (s.key == key) return s.ptr;
  e.shared_bytes += bytes;
  if (e.shared_bytes > Limits::kMaxStaticSharedBytes)
    fail_in_fiber(e, "static shared memory of " + std::to_string(e.shared_bytes) + " bytes (with '" + name +
                         "') exceeds the 48 KiB a block may declare without the dynamic opt-in");
  void* p = nullptr;
  if (posix_memalign(&p, std::max<std::size_t>(align, 16), bytes ? bytes : 1) != 0) throw std::bad_alloc();
  std::memset(p, kPoison, bytes);
  e.shared.push_back(SharedSlot{key, p});
  return p;
}

}  // namespace detail
}  // namespace fusedkd::simt

// ----------------------------------------------------------------------------- runtime API

namespace {

using fusedkd::simt::tls_error_text;
using fusedkd::simt::tls_last_error;
using fusedkd::simt::tls_last_failure;

struct Allocations {
  std::set<void*> live;
};
Allocations& allocations() {
  static Allocations a;
  return a;
}

cudaError_t fail(cudaError_t e) {
  tls_last_error = e;
  return e;
}

}  // namespace

struct CUstream_st {
  unsigned flags;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point at;
  bool recorded;
};

cudaError_t cudaGetLastError() {
  const cudaError_t e = tls_last_error;
  tls_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return tls_last_error; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorNotSupported: return "operation not supported (not emulated by the fusedkd SIMT build)";
    case cudaErrorInvalidConfiguration:
    case cudaErrorLaunchFailure:
      tls_error_text = std::string(e == cudaErrorLaunchFailure ? "unspecified launch failure" : "invalid configuration argument") +
                       " (SIMT emulator: " + tls_last_failure + ")";
      return tls_error_text.c_str();
    default: return "unknown error";
  }
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return fail(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  if (!device) return fail(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (!prop) return fail(cudaErrorInvalidValue);
  if (device != 0) return fail(cudaErrorInvalidDevice);
  using fusedkd::simt::Limits;
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "fusedkd SIMT emulator (host CPU)");
  prop->totalGlobalMem = std::size_t(sysconf(_SC_PHYS_PAGES)) * std::size_t(sysconf(_SC_PAGE_SIZE));
  prop->sharedMemPerBlock = Limits::kMaxStaticSharedBytes;
  prop->regsPerBlock = 65536;
  prop->warpSize = int(Limits::kWarpSize);
  prop->maxThreadsPerBlock = int(Limits::kMaxThreadsPerBlock);
  prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = int(Limits::kMaxBlockDimXY);
  prop->maxThreadsDim[2] = int(Limits::kMaxBlockDimZ);
  prop->maxGridSize[0] = int(Limits::kMaxGridDimX);
  prop->maxGridSize[1] = prop->maxGridSize[2] = int(Limits::kMaxGridDimYZ);
  prop->multiProcessorCount = 1;
  prop->major = 0;
  prop->minor = 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaMalloc(void** ptr, std::size_t bytes) {
  if (!ptr) return fail(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;
  // Exact size (AddressSanitizer then reports any access past the end), 256-byte aligned like
  // cudaMalloc, filled with 0xff bytes like memory nobody has written.
  if (posix_memalign(ptr, 256, bytes) != 0) return fail(cudaErrorMemoryAllocation);
  std::memset(*ptr, 0xff, bytes);
  allocations().live.insert(*ptr);
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  if (allocations().live.erase(ptr) == 0) return fail(cudaErrorInvalidValue);
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind) {
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return fail(cudaErrorInvalidValue);
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* dst, int value, std::size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!dst) return fail(cudaErrorInvalidValue);
  std::memset(dst, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t) { return cudaMemset(dst, value, bytes); }

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  if (!stream) return fail(cudaErrorInvalidValue);
  *stream = new CUstream_st{flags};
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  if (!event) return fail(cudaErrorInvalidValue);
  *event = new CUevent_st{{}, false};
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  if (!event) return fail(cudaErrorInvalidResourceHandle);
  event->at = std::chrono::steady_clock::now();
  event->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) { return event ? cudaSuccess : fail(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms || !start || !end || !start->recorded || !end->recorded) return fail(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) { return fail(cudaErrorNotSupported); }
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t*) { return fail(cudaErrorNotSupported); }
cudaError_t cudaGraphInstantiate(cudaGraphExec_t*, cudaGraph_t, unsigned long long) { return fail(cudaErrorNotSupported); }
cudaError_t cudaGraphLaunch(cudaGraphExec_t, cudaStream_t) { return fail(cudaErrorNotSupported); }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t) { return cudaSuccess; }
cudaError_t cudaGraphDestroy(cudaGraph_t) { return cudaSuccess; }
