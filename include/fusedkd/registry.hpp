// The registry: the one list of the losses, from which the op layer enumerates everything.
//
// A loss is its header (losses/<loss>.hpp: Params with fields(), the policy with its descriptor,
// descriptor.hpp) and one line below. From the list come the op schemas and the boxed CPU and
// CUDA op implementations (bindings/), the CPU row-loop and CUDA instantiation units (CMake reads
// the FUSEDKD_ROW_LOCAL_LOSSES lines: keep one `X(Policy)` per line), and, through the compiled
// op library, the Python op layer (python/fusedkd/_specs.py checks its list against the schemas).
#pragma once

#include "losses/cross_entropy.hpp"
#include "losses/dkd.hpp"
#include "losses/forward_kl.hpp"
#include "losses/jsd.hpp"
#include "losses/kd.hpp"
#include "losses/nkd.hpp"
#include "losses/reverse_kl.hpp"
#include "losses/rld.hpp"
#include "losses/tvd.hpp"
#include "losses/uskd.hpp"

namespace fusedkd {

// The row-local losses: every row is independent; the generic executors run them
// (cpu/loss_rows.hpp, cuda/launch.cuh launch_row_local).
#define FUSEDKD_ROW_LOCAL_LOSSES(X) \
  X(KD)                             \
  X(DKD)                            \
  X(NKD)                            \
  X(RLD)                            \
  X(ForwardKL)                      \
  X(ReverseKL)                      \
  X(JSD)                            \
  X(TVD)                            \
  X(CrossEntropy)

// The losses with a batch-level stage between two row passes, each with its own executor:
// USKD (the batch mean of p_s,y²).
#define FUSEDKD_BATCH_LOSSES(X) X(USKD)

// Enumerations are macro expansions, X(KD) X(DKD) ..., so that each names the loss's own class
// template (an alias template would be a different template argument, and the explicit
// instantiations in the generated units would not match).

}  // namespace fusedkd
