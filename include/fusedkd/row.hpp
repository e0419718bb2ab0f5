// What a loss knows about a row before its single pass over the columns.
#pragma once

#include "config.hpp"
#include "numeric.hpp"

namespace fusedkd {

// y: the row's label (or -1 for losses without one); s_y, t_y: the gathered target logits.
template <class A> struct RowInput {
  long long y = -1;
  A s_y = A(0);
  A t_y = A(0);
};

// Gathers the row's target logits s_y, t_y (y < 0: a loss without labels; t null: no teacher).
template <class A, class TS, class TT> FUSEDKD_HD_INLINE RowInput<A> gather_row_input(const TS* s, const TT* t, long long y) {
  RowInput<A> in;
  in.y = y;
  if (y >= 0) {
    in.s_y = A(to_acc(s[y]));
    in.t_y = t ? A(to_acc(t[y])) : A(0);
  }
  return in;
}

}  // namespace fusedkd
