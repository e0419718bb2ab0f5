// Errors of the C++ API: an exception whose message names the offending argument.
#pragma once

#include <stdexcept>
#include <string>

namespace fusedkd {

class Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

inline void require(bool ok, const std::string& message) {
  if (!ok) throw Error("fusedkd: " + message);
}

}  // namespace fusedkd
