// Umbrella header of the header-only C++ API (CPU executor and the shared loss math).
#pragma once

#include "batch.hpp"
#include "cpu/losses.hpp"
#include "cpu/scale_rows.hpp"
#include "error.hpp"
#include "losses/dkd.hpp"
#include "losses/kd.hpp"
#include "losses/nkd.hpp"
#include "losses/reverse_kl.hpp"
#include "losses/rld.hpp"
#include "losses/uskd.hpp"
#include "numeric.hpp"
#include "registry.hpp"
#include "online_softmax.hpp"
#include "reduction.hpp"
#include "scale_rows.hpp"
#include "standardize.hpp"
