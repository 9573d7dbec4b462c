// The numeric-precision switches of libtorch that tch 0.24 does not bind: TF32 for CUDA matrix
// products and convolutions, autocast with a chosen lower-precision type per device type, and
// the channels-last memory format.
// A C interface of plain ints, so that no C++ type crosses into Rust; every function catches
// libtorch's exceptions and reports them as a non-zero return with the message in `err`.
#include <ATen/Context.h>
#include <ATen/Version.h>
#include <ATen/autocast_mode.h>
#include <dlfcn.h>

#include "guard.h"

#include <cstring>
#include <string>
#include <exception>

namespace {

// 0: CPU, 1: CUDA (the device types storyvis runs on).
c10::DeviceType device_type(int device) { return device == 1 ? c10::DeviceType::CUDA : c10::DeviceType::CPU; }

}  // namespace

extern "C" {

// TF32 on (1) or off (0) for CUDA matrix products and cuDNN convolutions.
int storyvis_set_tf32(int on, char* err, size_t err_len) {
  STORYVIS_GUARD({
    auto p = on ? at::Float32Precision::TF32 : at::Float32Precision::IEEE;
    at::globalContext().setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL, p);
    at::globalContext().setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::CONV, p);
  })
}

// Whether TF32 is allowed for CUDA matrix products and convolutions (1 each when it is).
int storyvis_tf32(int* matmul, int* conv, char* err, size_t err_len) {
  STORYVIS_GUARD({
    auto& ctx = at::globalContext();
    *matmul = ctx.float32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL) == at::Float32Precision::TF32;
    *conv = ctx.float32Precision(at::Float32Backend::CUDA, at::Float32Op::CONV) == at::Float32Precision::TF32;
  })
}

// Enters an autocast region to bfloat16 on a device type; `was_enabled` and `was_dtype`
// receive the state to hand back to storyvis_autocast_exit.
int storyvis_autocast_enter(int device, int* was_enabled, int* was_dtype, char* err, size_t err_len) {
  STORYVIS_GUARD({
    auto t = device_type(device);
    *was_enabled = at::autocast::is_autocast_enabled(t);
    *was_dtype = static_cast<int>(at::autocast::get_autocast_dtype(t));
    at::autocast::set_autocast_dtype(t, at::kBFloat16);
    at::autocast::set_autocast_enabled(t, true);
    at::autocast::increment_nesting();
  })
}

// Leaves the region: the weight casts it cached are freed when the outermost region ends.
int storyvis_autocast_exit(int device, int was_enabled, int was_dtype, char* err, size_t err_len) {
  STORYVIS_GUARD({
    auto t = device_type(device);
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(t, was_enabled != 0);
    at::autocast::set_autocast_dtype(t, static_cast<at::ScalarType>(was_dtype));
  })
}

// Whether autocast is on for a device type, and whether its lower-precision type is bfloat16.
int storyvis_autocast_state(int device, int* enabled, int* bf16, char* err, size_t err_len) {
  STORYVIS_GUARD({
    auto t = device_type(device);
    *enabled = at::autocast::is_autocast_enabled(t);
    *bf16 = at::autocast::get_autocast_dtype(t) == at::kBFloat16;
  })
}

// A new tensor (owned by the caller, as tch's tensors are: a heap-allocated at::Tensor) with
// x's values in the channels-last memory format; differentiable.
int storyvis_channels_last(const at::Tensor* x, at::Tensor** out, char* err, size_t err_len) {
  STORYVIS_GUARD({ *out = new at::Tensor(x->contiguous(at::MemoryFormat::ChannelsLast)); })
}

// Whether x is laid out channels-last.
int storyvis_is_channels_last(const at::Tensor* x, int* yes, char* err, size_t err_len) {
  STORYVIS_GUARD({ *yes = x->is_contiguous(at::MemoryFormat::ChannelsLast); })
}

// The build settings of the libtorch loaded at run time (at::show_config(), compiled into
// libtorch_cpu.so itself, so it names that library's version, not the headers'), and the path
// of that library; both truncated to `len` bytes.
int storyvis_libtorch_config(char* config, size_t config_len, char* path, size_t path_len, char* err, size_t err_len) {
  STORYVIS_GUARD({
    storyvis::copy_message(at::show_config().c_str(), config, config_len);
    Dl_info info;
    const char* where = "";
    if (dladdr(reinterpret_cast<void*>(&at::show_config), &info) != 0 && info.dli_fname != nullptr) where = info.dli_fname;
    storyvis::copy_message(where, path, path_len);
  })
}

// Throws a non-std exception: checks that the C boundary turns any exception into an error.
int storyvis_throw_unknown(char* err, size_t err_len) {
  STORYVIS_GUARD({ throw 42; })
}

}  // extern "C"
