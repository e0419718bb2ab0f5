// Umbrella header of the CUDA executor (header-only; include from .cu files compiled by nvcc).
//
//   #include <fusedkd/cuda/fusedkd_cuda.cuh>
//   fusedkd::cuda::kd / dkd / nkd / rld / uskd / topk_kd  (+ *_workspace_size), scale_rows (backward)
//   fusedkd::cuda::shard_stats / shard_cross / shard_finish   (vocabulary shards: shard_launch.cuh)
//
// Layers: common.cuh (loads/stores, labels) · reduce.cuh (warp/group/block reductions of
// mergeable states) · traits.cuh (kernel traits, launch plan, workspace layout) ·
// row_kernels.cuh, batch_kernels.cuh, uskd_kernels.cuh, shard_kernels.cuh (kernel bodies) ·
// launch.cuh, shard_launch.cuh (host API).
#pragma once

#include "../fusedkd.hpp"
#include "batch_kernels.cuh"
#include "common.cuh"
#include "launch.cuh"
#include "reduce.cuh"
#include "row_kernels.cuh"
#include "scale_rows.cuh"
#include "shard_kernels.cuh"
#include "shard_launch.cuh"
#include "topk_kernels.cuh"
#include "traits.cuh"
#include "uskd_kernels.cuh"
