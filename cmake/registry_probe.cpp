// Prints the registry (include/fusedkd/registry.hpp) for CMake (cmake/FusedkdRegistry.cmake), one
// row-local loss per line: <policy>,<standardizes: 0/1>,<takes labels: 0/1>.
#include <cstdio>

#include <fusedkd/registry.hpp>
#include <fusedkd/standardize.hpp>

int main() {
#define FUSEDKD_PRINT_LOSS(L)                                                                     \
  std::printf("%s,%d,%d\n", #L, int(fusedkd::has_logit_standardization<fusedkd::L<float>::Params>::value), \
              int(fusedkd::label_use<fusedkd::L<float>>() != fusedkd::LabelUse::None));
  FUSEDKD_ROW_LOCAL_LOSSES(FUSEDKD_PRINT_LOSS)
#undef FUSEDKD_PRINT_LOSS
  return 0;
}
