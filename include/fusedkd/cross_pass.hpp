// The cross pass: a second statistics pass over a row, for the losses whose per-column terms need
// both normalizers (the JSD mixture's log m_j = log(β p_j + (1 − β) q_j), TVD's |p_j − q_j|).
//
// Such a loss declares, beside Stats / finalize / grad (row.hpp's row program),
//   template <class V> struct CrossT {         // sums over the columns, mergeable like Stats
//     template <class J> void push(const Context&, const Row&, J j, V s_j, V t_j);
//     zip(other, f); merge(other);
//   };
//   using Cross = CrossT<A>;
//   static void finish(const Context&, Row&, const Cross&);  // the loss, and what grad() needs
// and every executor runs, per row: the statistics pass → finalize → the cross pass → finish →
// the gradient pass. The other losses declare none, and the executors skip the pass at compile time.
#pragma once

#include <type_traits>

#include "config.hpp"

namespace fusedkd {

template <class L, class = void> struct has_cross_pass : std::false_type {};
template <class L> struct has_cross_pass<L, std::void_t<typename L::Cross>> : std::true_type {};

// The cross state of a loss without a cross pass: nothing to merge.
struct NoCross {
  FUSEDKD_HD void merge(const NoCross&) {}
};

template <class L, class = void> struct cross_of {
  using type = NoCross;
};
template <class L> struct cross_of<L, std::void_t<typename L::Cross>> {
  using type = typename L::Cross;
};
template <class L> using cross_t = typename cross_of<L>::type;

}  // namespace fusedkd
