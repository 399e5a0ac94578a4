// ExecuTorch behind the C API of ptm_executorch.h. See that header for the contract.
#include "ptm_executorch.h"

#include <executorch/extension/data_loader/buffer_data_loader.h>
#include <executorch/extension/data_loader/mmap_data_loader.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor_ptr_maker.h>
#include <executorch/runtime/core/exec_aten/util/scalar_type_util.h>
#include <executorch/runtime/executor/program.h>
#include <executorch/runtime/platform/runtime.h>

#include <climits>
#include <mutex>
#if !defined(__APPLE__)
#include <dlfcn.h>
#endif
#include <cstdio>
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
// Loading, freeing and resizing the threadpool take this lock: a loaded XNNPACK
// delegate keeps using the pool it was created with, so the pool may be resized only
// while no module exists, and none may start loading while it is resized.
std::mutex lifecycle;
// Modules alive (counted under `lifecycle`).
int live_modules = 0;
}  // namespace

struct ptm_et_module {
  // Program bytes this module owns, over-allocated by 15 for 16-byte alignment.
  std::unique_ptr<uint8_t[]> owned;
  std::unique_ptr<ext::module::Module> module;
  // How many inputs forward takes: ExecuTorch keeps the previous call's inputs, so a
  // call with fewer would run on stale ones.
  size_t inputs = 0;
};

namespace {

// Returned when the message itself cannot be allocated: NULL would read as success.
char out_of_memory[] = "out of memory while reporting an error";

char* message(const std::string& text) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  if (!out) return out_of_memory;
  std::memcpy(out, text.c_str(), text.size() + 1);
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
    try {
      return message(std::string("ExecuTorch runtime: ") + e.what());
    } catch (...) {
      return out_of_memory;
    }
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
// ("xnn_status_invalid_parameter"). Only then: a deep-bound library bypasses
// interposed allocators, and sanitizers abort at its first load. The build defines
// PTM_ET_DEEPBIND when libtorch is linked beside; PTM_EXECUTORCH_DEEPBIND=0 turns it
// off at run time. glibc only; bionic has no RTLD_DEEPBIND.
#if !defined(__APPLE__)
int load_flags() {
  int flags = RTLD_NOW | RTLD_LOCAL;
#if defined(RTLD_DEEPBIND) && defined(PTM_ET_DEEPBIND)
  const char* setting = std::getenv("PTM_EXECUTORCH_DEEPBIND");
  if (setting == nullptr || std::strcmp(setting, "0") != 0) flags |= RTLD_DEEPBIND;
#endif
  return flags;
}
#endif

// What could not be loaded, for the message of a program that then fails to load.
// Never destroyed: a thread still loading while the process exits must not find it gone.
std::string& not_loaded = *new std::string;

// Whether the log goes where ExecuTorch sends it by default: an app that registered its
// own PAL log function (register_pal, or a strong et_pal_emit_log_message of its own)
// keeps it, and ptm's messages then carry ExecuTorch's code only. ExecuTorch's default
// lives in the library that defines get_pal_impl.
bool default_log() {
  const et::PalImpl* pal = et::get_pal_impl();
  if (pal == nullptr || pal->emit_log_message == nullptr) return true;
#if defined(__APPLE__)
  return pal->emit_log_message == &et_pal_emit_log_message;
#else
  Dl_info log_in, runtime_in;
  if (!dladdr(reinterpret_cast<void*>(pal->emit_log_message), &log_in) ||
      !dladdr(reinterpret_cast<void*>(&et::get_pal_impl), &runtime_in))
    return pal->emit_log_message == &et_pal_emit_log_message;
  return log_in.dli_fbase == runtime_in.dli_fbase;
#endif
}

void init_once() {
  static const bool done = [] {
    if (default_log()) et::register_pal(et::PalImpl::create(keep_errors, __FILE__));
    et::runtime_init();
#if !defined(__APPLE__)
    const int flags = load_flags();
    for (const char* name :
         {"libexecutorch_backend_xnnpack.so", "libexecutorch_kernels_optimized.so", "libexecutorch_kernels_quantized.so"}) {
      if (!dlopen(name, flags)) {
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
  auto meta = holder->module->method_meta("forward");
  if (!meta.ok()) return message("reading its forward method failed: " + describe(meta.error()));
  holder->inputs = meta->num_inputs();
  *out = holder.release();
  ++live_modules;
  return nullptr;
}

// Copies `tensor` out of the method's memory into `o`; false when out of memory.
// Its element type is one of ptm's (checked by the caller).
bool copy_out(const executorch::aten::Tensor& tensor, ptm_output& o) {
  o.rank = tensor.dim();
  o.numel = tensor.numel();
  o.dtype = type_code(tensor.scalar_type());
  // One block: the sizes, then the elements at a 16-byte boundary.
  size_t head = (sizeof(int64_t) * o.rank + 15) & ~size_t(15);
  o.owner = std::malloc(head + (tensor.nbytes() ? tensor.nbytes() : 1));
  if (!o.owner) return false;
  auto* shape = static_cast<int64_t*>(o.owner);
  auto* data = static_cast<uint8_t*>(o.owner) + head;
  for (size_t d = 0; d < o.rank; ++d) shape[d] = tensor.size(d);
  std::memcpy(data, tensor.const_data_ptr(), tensor.nbytes());
  o.shape = shape;
  o.data = data;
  return true;
}

}  // namespace

extern "C" {

size_t ptm_et_element_size(int32_t code) {
  ScalarType type;
  return scalar_type(code, &type) ? executorch::runtime::elementSize(type) : 0;
}

size_t ptm_et_program_length(const uint8_t* data, size_t len) {
  static const char magic[] = "PTMPTE01";
  if (len < 16 || std::memcmp(data + len - 8, magic, 8) != 0) return len;
  uint32_t identity = 0;
  std::memcpy(&identity, data + len - 16, 4);
  return identity <= len - 16 ? len - 16 - identity : len;
}

int ptm_et_schema(char out[5]) {
  // The runtime knows the one identifier it reads (Program::check_header), not its name:
  // asked of each, it names its own.
  uint8_t head[et::Program::kMinHeadBytes] = {};
  for (int version = 0; version < 100; ++version) {
    char id[5];
    std::snprintf(id, sizeof id, "ET%02d", version);
    std::memcpy(head + 4, id, 4);
    if (et::Program::check_header(head, sizeof head) == et::Program::HeaderStatus::CompatibleVersion) {
      std::memcpy(out, id, 5);
      return 1;
    }
  }
  return 0;
}

char* ptm_et_load_bytes(const uint8_t* data, size_t len, int borrow, ptm_et_module** out) {
  return guarded([&]() -> char* {
    std::lock_guard<std::mutex> lock(lifecycle);
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
    std::lock_guard<std::mutex> lock(lifecycle);
    init_once();
    logged.clear();
    auto loader = ext::MmapDataLoader::from(path, ext::MmapDataLoader::MlockConfig::NoMlock);
    if (!loader.ok()) return message(std::string("opening ") + path + " failed: " + describe(loader.error()));
    auto holder = std::make_unique<ptm_et_module>();
    holder->module = std::make_unique<ext::module::Module>(std::make_unique<ext::MmapDataLoader>(std::move(loader.get())));
    return finish_load(std::move(holder), out);
  });
}

void ptm_et_module_free(ptm_et_module* module) {
  if (module == nullptr) return;
  std::lock_guard<std::mutex> lock(lifecycle);
  // Destroyed before it stops counting: the delegate lets go of the pool first.
  delete module;
  --live_modules;
}

char* ptm_et_run(ptm_et_module* module, const ptm_input* inputs, size_t n_inputs, ptm_output* outputs,
                 size_t capacity, size_t* count) {
  *count = 0;
  size_t stored = 0;
  char* failure = guarded([&]() -> char* {
    logged.clear();
    if (n_inputs != module->inputs)
      return message("forward takes " + std::to_string(module->inputs) + " input(s), " + std::to_string(n_inputs) + " were given");
    std::vector<ext::TensorPtr> tensors;
    std::vector<et::EValue> values;
    tensors.reserve(n_inputs);
    for (size_t i = 0; i < n_inputs; ++i) {
      ScalarType type;
      if (!scalar_type(inputs[i].dtype, &type)) return message("input " + std::to_string(i) + ": unknown element type code");
      // ExecuTorch's sizes are 32-bit and it aborts the process on a negative one.
      std::vector<executorch::aten::SizesType> sizes;
      for (size_t d = 0; d < inputs[i].rank; ++d) {
        int64_t size = inputs[i].shape[d];
        if (size < 0 || size > INT32_MAX)
          return message("input " + std::to_string(i) + ": dimension " + std::to_string(d) + " is " + std::to_string(size) +
                         ", ExecuTorch takes sizes up to " + std::to_string(INT32_MAX));
        sizes.push_back(static_cast<executorch::aten::SizesType>(size));
      }
      // ExecuTorch reads inputs; the method's own planned memory takes its writes.
      tensors.push_back(ext::from_blob(const_cast<void*>(inputs[i].data), std::move(sizes), type));
      values.emplace_back(*tensors.back());
    }
    auto result = module->module->forward(values);
    if (!result.ok()) return message("forward failed: " + describe(result.error()));
    const auto& returned = result.get();
    if (returned.size() > capacity) {
      *count = returned.size();
      return nullptr;
    }
    for (size_t i = 0; i < returned.size(); ++i) {
      if (!returned[i].isTensor()) return message("output " + std::to_string(i) + " is not a tensor");
      ScalarType type = returned[i].toTensor().scalar_type();
      if (type_code(type) < 0)
        return message("output " + std::to_string(i) + " holds " + executorch::runtime::toString(type) +
                       " elements, which ptm cannot hand over (it takes float32, float64, int64, int32, int16, int8, uint8, bool, float16)");
      if (returned[i].toTensor().dim() > PTM_MAX_RANK)
        return message("output " + std::to_string(i) + " has " + std::to_string(returned[i].toTensor().dim()) +
                       " dimensions, ptm supports at most " + std::to_string(PTM_MAX_RANK));
      ++stored;
      if (!copy_out(returned[i].toTensor(), outputs[i])) return message("out of memory copying output " + std::to_string(i));
    }
    *count = returned.size();
    return nullptr;
  });
  if (failure != nullptr) {
    // Nothing is handed over with an error.
    for (size_t i = 0; i < stored; ++i) ptm_et_output_free(&outputs[i]);
    *count = 0;
  }
  return failure;
}

void ptm_et_output_free(ptm_output* output) {
  std::free(output->owner);
  output->owner = nullptr;
  output->data = nullptr;
  output->shape = nullptr;
}

char* ptm_et_set_num_threads(int32_t threads) {
  return guarded([&]() -> char* {
    if (threads < 1) return message("the thread count must be at least 1, not " + std::to_string(threads));
    std::lock_guard<std::mutex> lock(lifecycle);
    init_once();
    if (live_modules != 0)
      return message("ExecuTorch's thread count can change only while no model is loaded: set it before loading models");
    auto* pool = executorch::extension::threadpool::get_threadpool();
    if (!pool || !pool->_unsafe_reset_threadpool(static_cast<uint32_t>(threads))) return message("resizing ExecuTorch's threadpool failed");
    return nullptr;
  });
}

void ptm_et_string_free(char* message) {
  if (message != out_of_memory) std::free(message);
}

}  // extern "C"
