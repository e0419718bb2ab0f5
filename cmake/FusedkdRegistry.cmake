# Reads the loss registry (include/fusedkd/registry.hpp) by compiling and running
# cmake/registry_probe.cpp on the host, so that the generated units follow the C++ list:
#   FUSEDKD_ROW_LOCAL_LOSSES             the row-local policies (KD;DKD;...)
#   FUSEDKD_<policy>_STANDARDIZES        1 when its Params carry logit_standardization
#   FUSEDKD_<policy>_TAKES_LABELS        1 when it takes labels (required or optional)
try_run(_fusedkd_probe_run _fusedkd_probe_compile
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/cmake/registry_probe.cpp
  CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${CMAKE_CURRENT_SOURCE_DIR}/include"
  CXX_STANDARD 17
  COMPILE_OUTPUT_VARIABLE _fusedkd_probe_log
  RUN_OUTPUT_VARIABLE _fusedkd_probe_out)
if(NOT _fusedkd_probe_compile OR NOT _fusedkd_probe_run EQUAL 0)
  message(FATAL_ERROR "fusedkd: could not read the loss registry (cmake/registry_probe.cpp):\n${_fusedkd_probe_log}")
endif()
set(FUSEDKD_ROW_LOCAL_LOSSES "")
string(REGEX MATCHALL "[A-Za-z0-9_]+,[01],[01]" _fusedkd_probe_lines "${_fusedkd_probe_out}")
foreach(_line ${_fusedkd_probe_lines})
  string(REPLACE "," ";" _fields "${_line}")
  list(GET _fields 0 _name)
  list(GET _fields 1 _std)
  list(GET _fields 2 _labels)
  list(APPEND FUSEDKD_ROW_LOCAL_LOSSES ${_name})
  set(FUSEDKD_${_name}_STANDARDIZES ${_std})
  set(FUSEDKD_${_name}_TAKES_LABELS ${_labels})
endforeach()
message(STATUS "fusedkd: row-local losses from the registry: ${FUSEDKD_ROW_LOCAL_LOSSES}")
# A registry line added or removed re-runs the configuration (and so the probe and the generated units).
set_property(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_CURRENT_SOURCE_DIR}/include/fusedkd/registry.hpp ${CMAKE_CURRENT_SOURCE_DIR}/cmake/registry_probe.cpp)
