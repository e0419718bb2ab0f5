// What the CUDA ops share: torch's current CUDA stream, and the device checks of their tensors.
#pragma once

#include <torch/csrc/stable/library.h>

#include <dlfcn.h>

#include <cstdint>

#include "checks.hpp"

namespace fusedkd::binding {

// torch's current CUDA stream for a device. The stable ABI exposes the native handle only from
// torch 2.13 (torch_stream_native_handle); for 2.10+ we call the AOTInductor shim
// aoti_torch_get_current_cuda_stream, exported by libtorch_cuda.so (already loaded by
// `import torch` when CUDA tensors exist), looked up at run time so that this extension links
// against libtorch_cpu alone.
inline void* current_cuda_stream(int32_t device_index) {
  using GetStream = int32_t (*)(int32_t, void**);
  static const GetStream get_stream = []() -> GetStream {
    void* sym = nullptr;
    if (void* lib = dlopen("libtorch_cuda.so", RTLD_NOLOAD | RTLD_LAZY)) sym = dlsym(lib, "aoti_torch_get_current_cuda_stream");
    if (!sym) sym = dlsym(RTLD_DEFAULT, "aoti_torch_get_current_cuda_stream");
    return reinterpret_cast<GetStream>(sym);
  }();
  FUSEDKD_CHECK(get_stream != nullptr,
                "fusedkd: cannot find aoti_torch_get_current_cuda_stream in libtorch_cuda.so; is this a CUDA build "
                "of torch?");
  void* stream = nullptr;
  FUSEDKD_CHECK(get_stream(device_index, &stream) == 0, "fusedkd: could not get the current CUDA stream of device ",
                device_index);
  return stream;
}

inline void check_cuda_tensor(const Tensor& x, const char* name) {
  FUSEDKD_CHECK(x.is_cuda(), name, " must be a CUDA tensor for the CUDA implementation");
}

// Checks that every tensor is on the student's CUDA device; names the first that is not.
inline void check_same_cuda_device(const Tensor& student, const Tensor& other, const char* name) {
  check_cuda_tensor(other, name);
  FUSEDKD_CHECK(other.get_device_index() == student.get_device_index(), name, " is on cuda:", other.get_device_index(),
                " but student_logits is on cuda:", student.get_device_index());
}

}  // namespace fusedkd::binding
