// Kernel traits (compile-time shapes of each kernel family) and the launch plan that picks a
// family from the number of classes C, plus the workspace layout. Kept apart from the kernel
// bodies (flash-attention style) so that the launch layer, the workspace-size query and the
// kernels agree by construction.
//
//   C ≤ 1024            Group: a group of G lanes (G = 1..32, a power of two) per row, several
//                       rows per 256-thread block; statistics reduced by shuffles within the group.
//   1024 < C ≤ 8192     Block: one block per row (128/256/512 threads).
//   C > 8192            Split: each row cut in chunks of 4096 columns, one 256-thread block per
//                       (row, chunk): a stats kernel writes partial states to the workspace, a
//                       gradient kernel merges the row's partials in chunk order, finalizes and
//                       writes its chunk of the gradient (the chunk is re-read, mostly from L2).
// Losses that standardize rows first (RLD with logit_standardization) use Group for C ≤ 1024
// and Block (512 threads) beyond, with every pass inside one kernel.
//
// The plan depends only on C and the element sizes, never on the device, so results are
// bit-identical from run to run and from GPU to GPU of the same architecture.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common.cuh"

namespace fusedkd::cuda {

struct GroupKernelTraits {
  static constexpr int kThreads = 256;
  static constexpr std::int64_t kMaxCols = 1024;
  static constexpr int kColsPerLaneTarget = 2;  // vectors per lane before the group widens
};

struct BlockKernelTraits {
  static constexpr int kMaxThreads = 512;
  static constexpr std::int64_t kMaxCols = 8192;
};

struct SplitKernelTraits {
  static constexpr int kThreads = 256;
  static constexpr std::int64_t kChunk = 4096;  // a multiple of every vector width
  static constexpr int kMaxSplits = 65535;       // gridDim.y
};

enum class RowConfig : int { Group = 0, Block = 1, Split = 2 };

struct RowPlan {
  RowConfig config = RowConfig::Group;
  int threads = 256;         // blockDim.x
  int group_width = 32;      // Group: lanes per row
  int rows_per_block = 8;    // Group: rows per block
  int splits = 1;            // Split: chunks per row
  std::int64_t chunk = 0;    // Split: columns per chunk
};

inline int pow2_ceil_int(std::int64_t x) {
  int p = 1;
  while (p < x && p < (1 << 30)) p <<= 1;
  return p;
}

// Group or Block: one worker holds the whole row of C columns (vector width K). Above
// BlockKernelTraits::kMaxCols, a block of the most threads.
inline RowPlan plan_whole_row(std::int64_t C, int K) {
  RowPlan p;
  if (C <= GroupKernelTraits::kMaxCols) {
    p.config = RowConfig::Group;
    p.threads = GroupKernelTraits::kThreads;
    const std::int64_t per_lane = std::int64_t(K) * GroupKernelTraits::kColsPerLaneTarget;
    int g = pow2_ceil_int((C + per_lane - 1) / per_lane);
    p.group_width = g < 1 ? 1 : (g > 32 ? 32 : g);
    p.rows_per_block = p.threads / p.group_width;
    return p;
  }
  p.config = RowConfig::Block;
  p.threads = C <= 2048                        ? 128
              : C <= 4096                      ? 256
              : C <= BlockKernelTraits::kMaxCols ? 512
                                               : BlockKernelTraits::kMaxThreads;
  return p;
}

// Plan for a row-local loss over C columns (raw or standardized rows alike): a whole-row worker up
// to BlockKernelTraits::kMaxCols, above it Split (chunks of kChunk columns, one block each).
inline RowPlan plan_row_local(std::int64_t C, int K) {
  if (C <= BlockKernelTraits::kMaxCols) return plan_whole_row(C, K);
  RowPlan p;
  p.config = RowConfig::Split;
  p.threads = SplitKernelTraits::kThreads;
  p.chunk = SplitKernelTraits::kChunk;
  p.splits = int((C + p.chunk - 1) / p.chunk);
  return p;
}

// ----------------------------------------------------------------------------- workspace

// Batch-level values computed on the device (no host synchronization).
template <class A> struct BatchHeader {
  A scale;             // gradient / loss scale: 1/N_counted for batchmean (0 if none), else 1
  A mean_u;            // USKD: mean of u over counted rows
  long long counted;   // rows whose label is not ignore_index
  double harmonic;     // USKD: H_C
};

constexpr std::size_t kWorkspaceAlign = 256;
inline std::size_t align_up(std::size_t x) { return (x + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign; }

// Byte offsets of the workspace regions; total is what the caller must provide.
struct WorkspaceLayout {
  std::size_t header = 0;      // BatchHeader<A>
  std::size_t row_loss = 0;    // A[rows] (unused for reduction "none": the output holds them)
  std::size_t partials = 0;    // Split: Stats[rows * splits]; USKD: A[rows * splits] (NT sums)
  std::size_t row_stats = 0;   // USKD: USKDRowStats<A>[rows]
  std::size_t total = 0;
};

// header | row_loss | partials (partial_bytes_per_row_split * rows * splits) | row_stats
inline WorkspaceLayout make_layout(std::int64_t rows, std::size_t acc_size, std::size_t partial_bytes, int splits,
                                   std::size_t row_stats_bytes) {
  WorkspaceLayout w;
  std::size_t off = 0;
  w.header = off;
  off += align_up(64);
  w.row_loss = off;
  off += align_up(std::size_t(rows) * acc_size);
  w.partials = off;
  off += align_up(std::size_t(rows) * std::size_t(splits) * partial_bytes);
  w.row_stats = off;
  off += align_up(std::size_t(rows) * row_stats_bytes);
  w.total = off;
  return w;
}

}  // namespace fusedkd::cuda
