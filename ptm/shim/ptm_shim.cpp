// The Lite Interpreter behind ptm: loading .ptl files and running methods.
//
// Kept to what the Android and iOS libtorch-lite builds also export, so this one
// file compiles against the host's libtorch and against a phone's.
#include "ptm_shim.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/SmallVector.h>
#include <torch/csrc/jit/mobile/import.h>
#include <torch/csrc/jit/mobile/module.h>

#include <cstdlib>
#include <cstring>
#include <istream>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <utility>
#include <string>
#include <vector>

// How many inputs a method takes: its schema's arguments less `self`; those with
// defaults may be left out. Without a schema, unchecked.
struct Arity {
  size_t least = 0;
  size_t most = SIZE_MAX;
};

struct ptm_module {
  torch::jit::mobile::Module module;
  // The quantized engine the model's packed weights were made for, if any.
  bool has_engine;
  at::QEngine engine;
  // Whether an operator of the model may write a tensor in place: inputs are then
  // copied before each run, since the caller lends them read-only.
  bool copies_inputs;
  // XNNPACK's prepacked ops (prepacked::linear_clamp_run, conv2d...) set up one shared
  // operator object on every call, so concurrent calls race inside libtorch (a segfault
  // under tests/tests/runtime.rs): such a module runs one call at a time.
  bool serialize_runs;
  mutable std::mutex run_mutex;
  Arity forward_arity;
  // The .ptl's identity record (extra/ptm_identity), empty when it has none.
  std::string identity;
  // Looked up once: the Method points into `module`, which never moves. (The type is
  // c10::optional in libtorch-lite 1.x releases and std::optional in 2.x.)
  decltype(std::declval<const torch::jit::mobile::Module&>().find_method(std::string())) forward;
};

namespace {

char* copy_message(const char* text) {
  size_t len = std::strlen(text);
  char* out = static_cast<char*>(std::malloc(len + 1));
  if (out != nullptr) std::memcpy(out, text, len + 1);
  return out;
}

// Runs `body`, turning every exception into a message for Rust.
template <typename F>
char* guarded(F&& body) {
  try {
    body();
    return nullptr;
  } catch (const c10::Error& e) {
    return copy_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return copy_message(e.what());
  } catch (...) {
    return copy_message("unknown C++ exception");
  }
}

// A read-only stream over memory the caller owns (embedded bytes). The istream
// overload of _load_for_mobile reads records from it as it needs them, like the file
// overload reads the file; the ReadAdapterInterface overload would first copy the
// whole archive into a new buffer.
class MemoryStream final : public std::streambuf {
 public:
  MemoryStream(const uint8_t* data, size_t len) {
    char* begin = const_cast<char*>(reinterpret_cast<const char*>(data));
    setg(begin, begin, begin + len);
  }

 protected:
  pos_type seekoff(off_type off, std::ios_base::seekdir dir, std::ios_base::openmode which) override {
    if (!(which & std::ios_base::in)) return pos_type(off_type(-1));
    off_type base = dir == std::ios_base::beg ? 0 : dir == std::ios_base::cur ? gptr() - eback() : egptr() - eback();
    return seekpos(pos_type(base + off), which);
  }
  pos_type seekpos(pos_type pos, std::ios_base::openmode which) override {
    off_type at = off_type(pos);
    if (!(which & std::ios_base::in) || at < 0 || at > egptr() - eback()) return pos_type(off_type(-1));
    setg(eback(), eback() + at, egptr());
    return pos;
  }
};

at::QEngine parse_engine(const std::string& name) {
  if (name == "qnnpack") return at::QEngine::QNNPACK;
  if (name == "fbgemm") return at::QEngine::FBGEMM;
  if (name == "x86") return at::QEngine::X86;
  if (name == "onednn") return at::QEngine::ONEDNN;
  throw std::runtime_error("unknown quantized engine \"" + name + "\"");
}

// The quantized engine is process-wide in libtorch, and a quantized model's packed
// weights are made for the engine in force while it loads, and must be run under it.
// Loads and runs of quantized models hold the engine shared for their whole duration,
// so those of one engine proceed together; switching to another engine waits until
// nothing holds the current one. Float models take no part.
std::shared_mutex engine_mutex;

class EngineHold {
 public:
  explicit EngineHold(at::QEngine engine) {
    for (;;) {
      std::shared_lock<std::shared_mutex> shared(engine_mutex);
      if (at::globalContext().qEngine() == engine) {
        lock_ = std::move(shared);
        return;
      }
      shared.unlock();
      std::unique_lock<std::shared_mutex> exclusive(engine_mutex);
      switch_to(engine);
    }
  }

 private:
  static void switch_to(at::QEngine engine) {
    auto& context = at::globalContext();
    const auto& supported = context.supportedQEngines();
    if (std::find(supported.begin(), supported.end(), engine) == supported.end()) {
      std::string names;
      for (auto e : supported) names += (names.empty() ? "" : ", ") + c10::toString(e);
      throw std::runtime_error("this libtorch has no " + c10::toString(engine) +
                               " quantized engine (it has: " + names + ")");
    }
    context.setQEngine(engine);
  }

  std::shared_lock<std::shared_mutex> lock_;
};

// The Lite Interpreter does not check how many arguments a method gets: more than its
// schema declares read past its stack and crashed the process (found by tests/tests/
// fuzz.rs). The schema counts `self`; arguments with defaults may be left out.
Arity arity_of(const torch::jit::mobile::Function& function) {
  Arity arity;
  if (!function.hasSchema()) return arity;
  const auto& arguments = function.getSchema().arguments();
  arity.most = arguments.empty() ? 0 : arguments.size() - 1;
  for (size_t i = 1; i < arguments.size(); ++i) {
    if (!arguments[i].default_value()) arity.least = i;
  }
  return arity;
}

void check_arity(const Arity& arity, const char* name, size_t given) {
  if (given >= arity.least && given <= arity.most) return;
  std::string wanted = arity.least == arity.most ? std::to_string(arity.most) : std::to_string(arity.least) + " to " + std::to_string(arity.most);
  throw std::runtime_error("`" + std::string(name) + "` takes " + wanted + " input(s), " + std::to_string(given) + " were given");
}

// True when any operator is one of XNNPACK's prepacked ops, which keep state per call.
bool has_stateful_ops(torch::jit::mobile::Module& module) {
  for (const std::string& name : torch::jit::mobile::_export_operator_list(module)) {
    if (name.rfind("prepacked::", 0) == 0) return true;
  }
  return false;
}

// True when any operator writes a tensor in place (`aten::add_`) or into an `out=`
// argument. Conservative: most such writes land on the model's own intermediates, but
// which ones reach an input is not known from the bytecode's operator list.
bool writes_in_place(torch::jit::mobile::Module& module) {
  for (const std::string& name : torch::jit::mobile::_export_operator_list(module)) {
    size_t colon = name.find("::");
    std::string base = colon == std::string::npos ? name : name.substr(colon + 2);
    size_t dot = base.find('.');
    std::string overload = dot == std::string::npos ? "" : base.substr(dot + 1);
    base = base.substr(0, dot);
    bool in_place = base.size() > 1 && base.back() == '_' && base[base.size() - 2] != '_';
    if (in_place || overload == "out") return true;
  }
  return false;
}

template <typename Load>
char* load(const char* engine, ptm_module** out, Load&& loader) {
  *out = nullptr;
  return guarded([&] {
    auto holder = std::make_unique<ptm_module>();
    holder->has_engine = false;
    std::optional<EngineHold> hold;
    if (engine != nullptr) {
      holder->has_engine = true;
      holder->engine = parse_engine(engine);
      // Packed weights are made while loading, by the engine in force: held until loaded.
      hold.emplace(holder->engine);
    }
    c10::InferenceMode guard;
    torch::jit::ExtraFilesMap extra{{"ptm_identity", ""}};
    holder->module = loader(extra);
    holder->identity = extra["ptm_identity"];
    holder->forward = holder->module.find_method("forward");
    if (holder->forward) holder->forward_arity = arity_of(holder->forward->function());
    holder->copies_inputs = writes_in_place(holder->module);
    holder->serialize_runs = has_stateful_ops(holder->module);
    *out = holder.release();
  });
}

c10::ScalarType scalar_type(int32_t code) {
  switch (code) {
    case 0: return c10::ScalarType::Float;
    case 1: return c10::ScalarType::Double;
    case 2: return c10::ScalarType::Long;
    case 3: return c10::ScalarType::Int;
    case 4: return c10::ScalarType::Short;
    case 5: return c10::ScalarType::Char;
    case 6: return c10::ScalarType::Byte;
    case 7: return c10::ScalarType::Bool;
    case 8: return c10::ScalarType::Half;
  }
  throw std::runtime_error("unknown element type code " + std::to_string(code));
}

int32_t type_code(c10::ScalarType type) {
  switch (type) {
    case c10::ScalarType::Float: return 0;
    case c10::ScalarType::Double: return 1;
    case c10::ScalarType::Long: return 2;
    case c10::ScalarType::Int: return 3;
    case c10::ScalarType::Short: return 4;
    case c10::ScalarType::Char: return 5;
    case c10::ScalarType::Byte: return 6;
    case c10::ScalarType::Bool: return 7;
    case c10::ScalarType::Half: return 8;
    default: return -1;
  }
}

// Four outputs or fewer (nearly every model) cost no allocation.
using Tensors = c10::SmallVector<at::Tensor, 4>;

void collect(c10::IValue&& value, Tensors& tensors) {
  if (value.isTensor()) {
    tensors.push_back(std::move(value).toTensor());
  } else if (value.isTuple()) {
    for (const auto& element : value.toTupleRef().elements()) collect(c10::IValue(element), tensors);
  } else if (value.isList()) {
    for (const auto& element : value.toListRef()) collect(c10::IValue(element), tensors);
  } else {
    throw std::runtime_error("the model returned a " + value.tagKind() +
                             "; ptm supports a tensor or a tuple or list of tensors");
  }
}

// Hands each tensor's reference to the caller. Nothing here throws: every output is
// handed over, or none.
void hand_over(Tensors& tensors, ptm_output* outputs) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    at::Tensor& t = tensors[i];
    ptm_output& out = outputs[i];
    out.data = t.data_ptr();
    out.shape = t.sizes().data();
    out.rank = t.dim();
    out.numel = t.numel();
    out.dtype = type_code(t.scalar_type());
    // The caller owns this reference (no allocation per output); ptm_tensor_free drops it.
    out.tensor = reinterpret_cast<ptm_tensor*>(t.unsafeReleaseTensorImpl());
  }
}

}  // namespace

struct ptm_pending {
  Tensors tensors;
};

extern "C" {

char* ptm_module_load_bytes(const uint8_t* data, size_t len, const char* engine, ptm_module** out) {
  return load(engine, out, [&](torch::jit::ExtraFilesMap& extra) {
    MemoryStream buffer(data, len);
    std::istream in(&buffer);
    return torch::jit::_load_for_mobile(in, c10::Device(c10::kCPU), extra);
  });
}

char* ptm_module_load_file(const char* path, const char* engine, ptm_module** out) {
  return load(engine, out, [&](torch::jit::ExtraFilesMap& extra) {
    return torch::jit::_load_for_mobile(std::string(path), c10::Device(c10::kCPU), extra);
  });
}

const char* ptm_module_identity(const ptm_module* module) { return module->identity.c_str(); }

void ptm_module_free(ptm_module* module) { delete module; }

int ptm_module_copies_inputs(const ptm_module* module) { return module->copies_inputs ? 1 : 0; }

char* ptm_module_run(const ptm_module* module, const char* method, const ptm_input* inputs, size_t n_inputs,
                     ptm_output* outputs, size_t capacity, size_t* count, ptm_pending** pending) {
  *count = 0;
  *pending = nullptr;
  return guarded([&] {
    std::unique_lock<std::mutex> serial;
    if (module->serialize_runs) serial = std::unique_lock<std::mutex>(module->run_mutex);
    std::optional<EngineHold> hold;
    if (module->has_engine) hold.emplace(module->engine);
    c10::InferenceMode guard;
    std::vector<c10::IValue> stack;
    // Method::run inserts the module object in front; room for it saves a reallocation.
    stack.reserve(n_inputs + 1);
    for (size_t i = 0; i < n_inputs; ++i) {
      const ptm_input& input = inputs[i];
      // from_blob borrows: the Rust caller keeps the slice alive for the call, and lends
      // it read-only, so a model that may write in place gets a copy.
      at::Tensor tensor = at::from_blob(const_cast<void*>(input.data), at::IntArrayRef(input.shape, input.rank),
                                        at::TensorOptions().dtype(scalar_type(input.dtype)));
      stack.emplace_back(module->copies_inputs ? tensor.clone() : std::move(tensor));
    }
    if (method == nullptr && !module->forward) throw std::runtime_error("the model has no forward method");
    c10::IValue result;
    if (method == nullptr) {
      check_arity(module->forward_arity, "forward", n_inputs);
      result = (*module->forward)(std::move(stack));
    } else {
      auto callee = module->module.get_method(method);
      check_arity(arity_of(callee.function()), method, n_inputs);
      result = callee(std::move(stack));
    }
    Tensors tensors;
    collect(std::move(result), tensors);
    for (const auto& t : tensors) {
      if (t.dim() > PTM_MAX_RANK)
        throw std::runtime_error("an output has " + std::to_string(t.dim()) + " dimensions, ptm supports at most " +
                                 std::to_string(PTM_MAX_RANK));
    }
    for (auto& t : tensors) {
      if (!t.is_contiguous()) t = t.contiguous();
    }
    // More outputs than the caller has room for: keep them, so the model runs once.
    if (tensors.size() > capacity) {
      auto held = std::make_unique<ptm_pending>();
      held->tensors = std::move(tensors);
      *count = held->tensors.size();
      *pending = held.release();
      return;
    }
    *count = tensors.size();
    hand_over(tensors, outputs);
  });
}

void ptm_pending_take(ptm_pending* pending, ptm_output* outputs) {
  hand_over(pending->tensors, outputs);
  delete pending;
}

void ptm_pending_free(ptm_pending* pending) { delete pending; }

void ptm_tensor_free(ptm_tensor* tensor) {
  c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>::reclaim(reinterpret_cast<c10::TensorImpl*>(tensor));
}

void ptm_string_free(char* message) { std::free(message); }

const char* ptm_quantized_engine(void) {
  switch (at::globalContext().qEngine()) {
    case at::QEngine::QNNPACK: return "qnnpack";
    case at::QEngine::FBGEMM: return "fbgemm";
    case at::QEngine::X86: return "x86";
    case at::QEngine::ONEDNN: return "onednn";
    default: return "none";
  }
}

char* ptm_set_num_threads(int32_t threads) {
  return guarded([&] { at::set_num_threads(threads); });
}

int32_t ptm_num_threads(void) { return at::get_num_threads(); }

}  // extern "C"
