// Views of a batch of logit rows and its labels: raw pointers, sizes and row strides.
// Columns are contiguous (column stride 1); rows may be strided (slices, padded rows).
#pragma once

#include <cstdint>
#include <string>

#include "error.hpp"
#include "row.hpp"

namespace fusedkd {

template <class TS, class TT = TS> struct LogitsView {
  const TS* student = nullptr;
  std::int64_t student_row_stride = 0;
  const TT* teacher = nullptr;  // null for teacher-free losses
  std::int64_t teacher_row_stride = 0;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
};

template <class TL = std::int64_t> struct LabelsView {
  const TL* data = nullptr;  // null for losses without labels
  std::int64_t ignore_index = -100;

  FUSEDKD_HD bool ignored(std::int64_t i) const { return data != nullptr && std::int64_t(data[i]) == ignore_index; }
  FUSEDKD_HD long long label(std::int64_t i) const { return data ? (long long)data[i] : -1; }
};

// Where a run writes: per-row losses (optional) and ∂loss/∂student (optional), the latter
// already multiplied by grad_scale (1/N_counted for batchmean).
template <class A, class TG> struct RowOutputs {
  A* row_loss = nullptr;
  TG* grad = nullptr;
  std::int64_t grad_row_stride = 0;
  A grad_scale = A(1);
};

// Sizes and pointers agree with what Loss needs.
template <class L, class TS, class TT> void validate_shape(const LogitsView<TS, TT>& x) {
  require(x.rows >= 0, "student_logits: negative number of rows");
  require(x.cols >= L::min_classes, "student_logits: this loss needs at least " + std::to_string(L::min_classes) +
                                        " classes, got " + std::to_string(x.cols));
  require(x.rows == 0 || x.student != nullptr, "student_logits: null pointer");
  require(!L::uses_teacher || x.rows == 0 || x.teacher != nullptr, "teacher_logits: null pointer");
}

// Number of rows whose label is not ignore_index (all rows when there are no labels).
template <class TL> std::int64_t count_counted_rows(const LabelsView<TL>& labels, std::int64_t rows) {
  if (!labels.data) return rows;
  std::int64_t n = 0;
  for (std::int64_t i = 0; i < rows; ++i) n += labels.ignored(i) ? 0 : 1;
  return n;
}

// Every label is ignore_index or in [0, cols); throws naming the first bad row otherwise.
// name: the labels' argument name in messages.
template <class TL>
void validate_labels(const LabelsView<TL>& labels, std::int64_t rows, std::int64_t cols, const char* name = "target") {
  if (!labels.data) return;
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::int64_t y = std::int64_t(labels.data[i]);
    if (y == labels.ignore_index) continue;
    if (y < 0 || y >= cols)  // the message is built only for a bad label
      fail(std::string(name) + ": label " + std::to_string(y) + " at row " + std::to_string(i) + " is out of range [0, " +
           std::to_string(cols) + ") and is not ignore_index (" + std::to_string(labels.ignore_index) + ")");
  }
}

// USKD's inputs: student logits and the weak logits w = fc(feature), both [rows, cols], columns
// contiguous; its outputs: per-row losses and the two gradients (each optional).
template <class TS, class TW = TS> struct StudentWeakView {
  const TS* student = nullptr;
  std::int64_t student_row_stride = 0;
  const TW* weak = nullptr;
  std::int64_t weak_row_stride = 0;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
};

// Per-row losses (optional) and the two gradients (each optional), multiplied by grad_scale.
template <class A, class TG> struct USKDOutputs {
  A* row_loss = nullptr;
  TG* grad_student = nullptr;
  std::int64_t grad_student_row_stride = 0;
  TG* grad_weak = nullptr;
  std::int64_t grad_weak_row_stride = 0;
  A grad_scale = A(1);
};

template <class TS, class TW> void validate_uskd_shape(const StudentWeakView<TS, TW>& x) {
  require(x.rows >= 0, "student_logits: negative number of rows");
  require(x.cols >= 2, "student_logits: USKD needs at least 2 classes, got " + std::to_string(x.cols));
  require(x.rows == 0 || x.student != nullptr, "student_logits: null pointer");
  require(x.rows == 0 || x.weak != nullptr, "weak_logits: null pointer");
}

}  // namespace fusedkd
