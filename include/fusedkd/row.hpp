// What a loss knows about a row before its single pass over the columns.
#pragma once

#include "config.hpp"

namespace fusedkd {

// y: the row's label (or -1 for losses without one); s_y, t_y: the gathered target logits.
template <class A> struct RowInput {
  long long y = -1;
  A s_y = A(0);
  A t_y = A(0);
};

}  // namespace fusedkd
