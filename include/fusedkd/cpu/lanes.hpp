// Fixed-width SIMD lanes for the CPU executor: the vector type (lane_vector.hpp), its exp
// (lane_exp.hpp), |x|, tanh and log1p (lane_math.hpp) and its loads and stores with the float16 / bfloat16 conversions (lane_io.hpp).
#pragma once

#include "lane_exp.hpp"
#include "lane_io.hpp"
#include "lane_math.hpp"
#include "lane_vector.hpp"
