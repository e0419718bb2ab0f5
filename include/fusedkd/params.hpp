// Checks shared by the loss parameter structs.
#pragma once

#include <cmath>
#include <string>

#include "error.hpp"

namespace fusedkd {

inline void require_finite(double v, const char* name) {
  require(std::isfinite(v), std::string(name) + " must be finite, got " + std::to_string(v));
}

inline void require_temperature(double v, const char* name) {
  require(std::isfinite(v) && v > 0.0,
          std::string(name) + " must be a positive finite number, got " + std::to_string(v));
}

}  // namespace fusedkd
