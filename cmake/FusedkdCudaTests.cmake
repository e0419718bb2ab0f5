# CUDA example and GoogleTest suite (included from tests/cpp/CMakeLists.txt when FUSEDKD_HAS_CUDA).
#   fusedkd_cuda_example  examples/cuda_raw_pointers.cu: the header-only API on cudaMalloc'd memory,
#                         checked against the CPU executor (also the compute-sanitizer driver)
#   test_shard_cuda       tests/cpp/test_shard_cuda.cu: the vocabulary-shard kernels vs the CPU shard executor
#   test_cuda_executor    tests/cpp/test_cuda_executor.cu: GPU vs CPU executor; every test skips
#                         ("no CUDA device") where cudaGetDeviceCount finds none
set(_fusedkd_root ${PROJECT_SOURCE_DIR})

add_executable(fusedkd_cuda_example ${_fusedkd_root}/examples/cuda_raw_pointers.cu)
target_link_libraries(fusedkd_cuda_example PRIVATE fusedkd_cuda)

add_executable(test_cuda_executor ${_fusedkd_root}/tests/cpp/test_cuda_executor.cu)
target_link_libraries(test_cuda_executor PRIVATE fusedkd_cuda GTest::gtest_main)
target_compile_options(test_cuda_executor PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall>)

# The grid holds ~1000 parameterized cases, each checked against the CPU executor: ctest runs
# it as 8 GoogleTest shards so that `ctest -j` spreads them over the cores.
set(_fusedkd_cuda_shards 8)
math(EXPR _last "${_fusedkd_cuda_shards} - 1")
foreach(i RANGE ${_last})
  add_test(NAME test_cuda_executor_shard${i} COMMAND test_cuda_executor)
  set_tests_properties(test_cuda_executor_shard${i} PROPERTIES
    ENVIRONMENT "GTEST_TOTAL_SHARDS=${_fusedkd_cuda_shards};GTEST_SHARD_INDEX=${i}" TIMEOUT 900)
endforeach()
add_executable(test_topk_cuda ${_fusedkd_root}/tests/cpp/test_topk_cuda.cu)
target_link_libraries(test_topk_cuda PRIVATE fusedkd_cuda GTest::gtest_main)
add_test(NAME test_topk_cuda COMMAND test_topk_cuda)
add_executable(test_shard_cuda ${_fusedkd_root}/tests/cpp/test_shard_cuda.cu)
target_link_libraries(test_shard_cuda PRIVATE fusedkd_cuda GTest::gtest_main)
add_test(NAME test_shard_cuda COMMAND test_shard_cuda)
add_test(NAME fusedkd_cuda_example COMMAND fusedkd_cuda_example 300 5000 all)
