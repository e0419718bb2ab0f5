// Errors of the C++ API: an exception whose message names the offending argument.
#pragma once

#include <stdexcept>
#include <string>

namespace fusedkd {

class Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

[[noreturn]] inline void fail(const std::string& message) { throw Error("fusedkd: " + message); }

inline void require(bool ok, const std::string& message) {
  if (!ok) fail(message);
}

}  // namespace fusedkd
