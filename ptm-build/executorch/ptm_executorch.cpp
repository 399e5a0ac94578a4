// ExecuTorch behind the C API of ptm_executorch.h. See that header for the contract.
#include "ptm_executorch.h"

#include <executorch/extension/data_loader/buffer_data_loader.h>
#include <executorch/extension/data_loader/mmap_data_loader.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr_maker.h>
#include <executorch/runtime/platform/runtime.h>

#include <atomic>
#if !defined(__APPLE__)
#include <dlfcn.h>
#endif
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

// Not in the wheel's headers; exported by libexecutorch_threadpool.so.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

namespace et = executorch::runtime;
namespace ext = executorch::extension;
using executorch::aten::ScalarType;

namespace {
// Modules alive: the threadpool may be resized only while there are none, since a
// loaded XNNPACK delegate keeps using the pool it was created with.
std::atomic<int> live_modules{0};
}  // namespace

struct ptm_et_module {
  ptm_et_module() { ++live_modules; }
  ~ptm_et_module() { --live_modules; }
  // Program bytes this module owns, over-allocated by 15 for 16-byte alignment.
  std::unique_ptr<uint8_t[]> owned;
  std::unique_ptr<ext::module::Module> module;
};

namespace {

char* message(const std::string& text) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  if (out) std::memcpy(out, text.c_str(), text.size() + 1);
  return out;
}

// ExecuTorch reports a failure as a code and explains it in its log. The log comes
// here: errors are kept for the failing call's message (per thread, the last few), and
// its Info lines (CPU probes, threadpool sizes) are dropped instead of reaching the
// app's stderr.
thread_local std::vector<std::string> logged;

void keep_errors(et_timestamp_t, et_pal_log_level_t level, const char*, const char*, size_t, const char* text,
                 size_t length) {
  if ((level != kError && level != kFatal) || logged.size() >= 6) return;
  std::string line(text, length);
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  logged.push_back(line);
}

std::string describe(et::Error error) {
  std::string text = std::string(et::to_string(error)) + " (ExecuTorch error " + std::to_string(static_cast<int>(error)) + ")";
  for (size_t i = 0; i < logged.size(); ++i) text += (i == 0 ? ": " : "; ") + logged[i];
  logged.clear();
  return text;
}

template <typename F>
char* guarded(F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return message(std::string("ExecuTorch runtime: ") + e.what());
  } catch (...) {
    return message("ExecuTorch runtime: unknown C++ exception");
  }
}

// Backends and kernels register from static constructors, and a linker drops shared
// libraries nothing references: loading them by name (through the binary's rpath, or
// the app's own library directory on Android) runs those constructors. A build of
// ExecuTorch that links them into libexecutorch itself (as an Android AAR may) has
// none to load: a library that cannot be loaded is remembered, not an error, and named
// when a program then fails to load. On Apple platforms they are static archives,
// force-loaded by the app's link instead.
//
// Deep binding: the XNNPACK backend carries its own XNNPACK, and a process that also
// links libtorch (both backends of ptm) has libtorch's older XNNPACK in the global
// scope first; bound to that one, the backend's graphs fail to build
// ("xnn_status_invalid_parameter"). glibc only; bionic has no RTLD_DEEPBIND.
#if !defined(__APPLE__)
#if defined(RTLD_DEEPBIND)
constexpr int kLoadFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#else
constexpr int kLoadFlags = RTLD_NOW | RTLD_LOCAL;
#endif
#endif

// What could not be loaded, for the message of a program that then fails to load.
std::string not_loaded;

void init_once() {
  static const bool done = [] {
    et::register_pal(et::PalImpl::create(keep_errors, __FILE__));
    et::runtime_init();
#if !defined(__APPLE__)
    for (const char* name :
         {"libexecutorch_backend_xnnpack.so", "libexecutorch_kernels_optimized.so", "libexecutorch_kernels_quantized.so"}) {
      if (!dlopen(name, kLoadFlags)) {
        const char* why = dlerror();
        not_loaded += std::string(not_loaded.empty() ? "" : "; ") + (why ? why : name);
      }
    }
#endif
    return true;
  }();
  (void)done;
}

bool scalar_type(int32_t code, ScalarType* out) {
  switch (code) {
    case 0: *out = ScalarType::Float; return true;
    case 1: *out = ScalarType::Double; return true;
    case 2: *out = ScalarType::Long; return true;
    case 3: *out = ScalarType::Int; return true;
    case 4: *out = ScalarType::Short; return true;
    case 5: *out = ScalarType::Char; return true;
    case 6: *out = ScalarType::Byte; return true;
    case 7: *out = ScalarType::Bool; return true;
    case 8: *out = ScalarType::Half; return true;
  }
  return false;
}

int32_t type_code(ScalarType type) {
  switch (type) {
    case ScalarType::Float: return 0;
    case ScalarType::Double: return 1;
    case ScalarType::Long: return 2;
    case ScalarType::Int: return 3;
    case ScalarType::Short: return 4;
    case ScalarType::Char: return 5;
    case ScalarType::Byte: return 6;
    case ScalarType::Bool: return 7;
    case ScalarType::Half: return 8;
    default: return -1;
  }
}

// Loads the program and its forward method now, so a broken file fails at load.
char* finish_load(std::unique_ptr<ptm_et_module> holder, ptm_et_module** out) {
  const std::string unloaded = not_loaded.empty() ? "" : " (libraries that did not load: " + not_loaded + ")";
  et::Error error = holder->module->load(et::Program::Verification::InternalConsistency);
  if (error != et::Error::Ok) return message("loading the program failed: " + describe(error) + unloaded);
  error = holder->module->load_forward();
  if (error != et::Error::Ok) return message("loading its forward method failed: " + describe(error) + unloaded);
  *out = holder.release();
  return nullptr;
}

}  // namespace

extern "C" {

char* ptm_et_load_bytes(const uint8_t* data, size_t len, int borrow, ptm_et_module** out) {
  return guarded([&]() -> char* {
    init_once();
    logged.clear();
    auto holder = std::make_unique<ptm_et_module>();
    const uint8_t* program = data;
    if (!borrow || reinterpret_cast<uintptr_t>(data) % 16 != 0) {
      holder->owned.reset(new uint8_t[len + 15]);
      auto address = reinterpret_cast<uintptr_t>(holder->owned.get());
      auto* aligned = reinterpret_cast<uint8_t*>((address + 15) & ~uintptr_t(15));
      std::memcpy(aligned, data, len);
      program = aligned;
    }
    holder->module = std::make_unique<ext::module::Module>(std::make_unique<ext::BufferDataLoader>(program, len));
    return finish_load(std::move(holder), out);
  });
}

char* ptm_et_load_file(const char* path, ptm_et_module** out) {
  return guarded([&]() -> char* {
    init_once();
    logged.clear();
    auto loader = ext::MmapDataLoader::from(path, ext::MmapDataLoader::MlockConfig::NoMlock);
    if (!loader.ok()) return message(std::string("opening ") + path + " failed: " + describe(loader.error()));
    auto holder = std::make_unique<ptm_et_module>();
    holder->module = std::make_unique<ext::module::Module>(std::make_unique<ext::MmapDataLoader>(std::move(loader.get())));
    return finish_load(std::move(holder), out);
  });
}

void ptm_et_module_free(ptm_et_module* module) { delete module; }

char* ptm_et_run(ptm_et_module* module, const ptm_et_input* inputs, size_t n_inputs, ptm_et_output* outputs,
                 size_t capacity, size_t* count) {
  return guarded([&]() -> char* {
    *count = 0;
    logged.clear();
    std::vector<ext::TensorPtr> tensors;
    std::vector<et::EValue> values;
    tensors.reserve(n_inputs);
    for (size_t i = 0; i < n_inputs; ++i) {
      ScalarType type;
      if (!scalar_type(inputs[i].dtype, &type)) return message("input " + std::to_string(i) + ": unknown element type code");
      std::vector<executorch::aten::SizesType> sizes(inputs[i].shape, inputs[i].shape + inputs[i].rank);
      // ExecuTorch reads inputs; the method's own planned memory takes its writes.
      tensors.push_back(ext::from_blob(const_cast<void*>(inputs[i].data), std::move(sizes), type));
      values.emplace_back(*tensors.back());
    }
    auto result = module->module->forward(values);
    if (!result.ok()) return message("forward failed: " + describe(result.error()));
    const auto& returned = result.get();
    *count = returned.size();
    if (returned.size() > capacity) return nullptr;
    for (size_t i = 0; i < returned.size(); ++i) {
      if (!returned[i].isTensor()) {
        for (size_t j = 0; j < i; ++j) ptm_et_output_free(&outputs[j]);
        return message("output " + std::to_string(i) + " is not a tensor");
      }
      const auto& tensor = returned[i].toTensor();
      ptm_et_output& o = outputs[i];
      o.rank = tensor.dim();
      o.numel = tensor.numel();
      o.dtype = type_code(tensor.scalar_type());
      o.shape = static_cast<int64_t*>(std::malloc(sizeof(int64_t) * (o.rank ? o.rank : 1)));
      o.data = std::malloc(tensor.nbytes() ? tensor.nbytes() : 1);
      if (!o.shape || !o.data) throw std::bad_alloc();
      for (size_t d = 0; d < o.rank; ++d) o.shape[d] = tensor.size(d);
      std::memcpy(o.data, tensor.const_data_ptr(), tensor.nbytes());
    }
    return nullptr;
  });
}

void ptm_et_output_free(ptm_et_output* output) {
  std::free(output->data);
  std::free(output->shape);
  output->data = nullptr;
  output->shape = nullptr;
}

char* ptm_et_set_num_threads(int32_t threads) {
  return guarded([&]() -> char* {
    if (threads < 1) return message("the thread count must be at least 1, not " + std::to_string(threads));
    init_once();
    if (live_modules.load() != 0)
      return message("ExecuTorch's thread count can change only while no model is loaded: set it before loading models");
    auto* pool = executorch::extension::threadpool::get_threadpool();
    if (!pool || !pool->_unsafe_reset_threadpool(static_cast<uint32_t>(threads))) return message("resizing ExecuTorch's threadpool failed");
    return nullptr;
  });
}

void ptm_et_string_free(char* message) { std::free(message); }

}  // extern "C"
