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
#include <torch/csrc/jit/mobile/code.h>
#include <torch/csrc/jit/mobile/function.h>
#include <torch/csrc/jit/mobile/module.h>
#include <torch/csrc/jit/runtime/instruction.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <istream>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <type_traits>
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
  // Whether the model may change its own state while it runs (see Writes): concurrent
  // calls would race inside libtorch, so such a module runs one call at a time.
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

// Returned when the message itself cannot be allocated: NULL would read as success.
char out_of_memory[] = "out of memory while reporting an error";

char* copy_message(const std::string& text) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  if (out == nullptr) return out_of_memory;
  std::memcpy(out, text.c_str(), text.size() + 1);
  return out;
}

// libtorch's warnings (deprecations, qnnpack's reduce_range notice) would reach the
// app's stderr raw. During a load or run they are kept instead, and join the message
// when that call fails; a call that succeeds drops them. The handler is per thread in
// c10, so each call installs its own. c10's handler interface changed in torch 1.13
// (a Warning object, and TORCH_WARN_DEPRECATION with it); the 1.12 AAR's c10 passes the
// message alone.
#ifdef TORCH_WARN_DEPRECATION
using WarningGuard = c10::WarningUtils::WarningHandlerGuard;
#else
using WarningGuard = c10::Warning::WarningHandlerGuard;
#endif

class KeptWarnings final : public c10::WarningHandler {
 public:
#ifdef TORCH_WARN_DEPRECATION
  void process(const c10::Warning& warning) override { keep(warning.msg()); }
#else
  void process(const c10::SourceLocation&, const std::string& message, const bool) override { keep(message); }
#endif
  void keep(const std::string& message) noexcept {
    try {
      if (lines.size() < 4) lines.push_back(message);
    } catch (...) {
      // A warning that cannot be kept is dropped, never thrown into libtorch's code.
    }
  }
  std::string suffix() const {
    std::string text;
    for (const auto& line : lines) text += "; libtorch warned: " + line;
    return text;
  }
  std::vector<std::string> lines;
};

char* report(const char* what, const KeptWarnings& warnings) noexcept {
  try {
    return copy_message(what + warnings.suffix());
  } catch (...) {
    return out_of_memory;
  }
}

// Runs `body`, turning every exception into a message for Rust.
template <typename F>
char* guarded(F&& body) {
  KeptWarnings warnings;
  try {
    WarningGuard guard(&warnings);
    body();
    return nullptr;
  } catch (const c10::Error& e) {
    return report(e.what_without_backtrace(), warnings);
  } catch (const std::exception& e) {
    return report(e.what(), warnings);
  } catch (...) {
    return report("unknown C++ exception", warnings);
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

// QEngine::X86 exists from torch 1.13 on; the 1.12 AAR's c10 has none.
template <typename Engine, typename = void>
struct HasX86 : std::false_type {};
template <typename Engine>
struct HasX86<Engine, std::void_t<decltype(Engine::X86)>> : std::true_type {};

template <typename Engine = at::QEngine>
std::optional<Engine> x86_engine() {
  if constexpr (HasX86<Engine>::value) {
    return Engine::X86;
  } else {
    return std::nullopt;
  }
}

at::QEngine parse_engine(const std::string& name) {
  if (name == "qnnpack") return at::QEngine::QNNPACK;
  if (name == "fbgemm") return at::QEngine::FBGEMM;
  if (name == "x86") {
    if (auto x86 = x86_engine()) return *x86;
    throw std::runtime_error("this libtorch has no \"x86\" quantized engine (it came with torch 1.13)");
  }
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
  // Holds whatever engine is in force, without switching: for a load whose options name
  // no engine, so that another thread cannot switch it halfway through.
  EngineHold() : lock_(engine_mutex), engine_(at::globalContext().qEngine()) {}

  explicit EngineHold(at::QEngine engine) : engine_(engine) {
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

  at::QEngine engine() const { return engine_; }

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
  at::QEngine engine_;
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

// What a module's bytecode may do to memory, read once at load.
struct Writes {
  // An operator writes a tensor in place (`aten::add_`) or into an `out=` argument.
  // Most such writes land on the model's own intermediates, but which ones reach an
  // input or an attribute is not known from the operator list.
  bool tensors = false;
  // The module's own state changes: an attribute is assigned (SET_ATTR), a list or dict
  // is changed in place, or XNNPACK's prepacked ops (what optimize_for_mobile makes of
  // float Linear and Conv) set up the one operator object they share on every call.
  bool state = false;
};

// Operators that change a list or dict in place; a module's attributes may be one.
bool mutates_container(const std::string& base, const std::string& overload) {
  static const char* const names[] = {"append", "insert", "extend", "pop", "popitem", "clear", "remove",
                                      "_set_item", "setdefault", "update", "Delete"};
  for (const char* name : names) {
    if (base == name) return true;
  }
  // aten::sort on a list sorts it in place; on a tensor it returns new tensors.
  return base == "sort" && (overload == "int" || overload == "float" || overload == "Tensor" || overload == "bool" ||
                            overload == "str" || overload == "any");
}

Writes writes_of(torch::jit::mobile::Module& module) {
  Writes writes;
  for (const std::string& name : torch::jit::mobile::_export_operator_list(module)) {
    size_t colon = name.find("::");
    std::string base = colon == std::string::npos ? name : name.substr(colon + 2);
    size_t dot = base.find('.');
    std::string overload = dot == std::string::npos ? "" : base.substr(dot + 1);
    base = base.substr(0, dot);
    bool in_place = base.size() > 1 && base.back() == '_' && base[base.size() - 2] != '_';
    if (in_place || overload == "out") writes.tensors = true;
    if (name.rfind("prepacked::", 0) == 0 || mutates_container(base, overload)) writes.state = true;
  }
  for (const auto& function : module.compilation_unit().methods()) {
    for (const auto& instruction : function->get_code().instructions_) {
      if (instruction.op == torch::jit::SET_ATTR) writes.state = true;
    }
  }
  // A tensor written in place may be an attribute (`self.count += 1`).
  writes.state = writes.state || writes.tensors;
  return writes;
}

// Whether the model has INT8 kernels, whose packed weights belong to an engine.
bool is_quantized(torch::jit::mobile::Module& module) {
  for (const std::string& name : torch::jit::mobile::_export_operator_list(module)) {
    if (name.rfind("quantized::", 0) == 0) return true;
  }
  return false;
}

template <typename Load>
char* load(const char* engine, ptm_module** out, Load&& loader) {
  *out = nullptr;
  return guarded([&] {
    auto holder = std::make_unique<ptm_module>();
    // Packed weights are made while loading, by the engine in force: held until loaded,
    // the named one, or else the current one.
    std::optional<EngineHold> hold;
    if (engine != nullptr) {
      hold.emplace(parse_engine(engine));
    } else {
      hold.emplace();
    }
    c10::InferenceMode guard;
    torch::jit::ExtraFilesMap extra{{"ptm_identity", ""}};
    holder->module = loader(extra);
    holder->identity = extra["ptm_identity"];
    holder->forward = holder->module.find_method("forward");
    if (holder->forward) holder->forward_arity = arity_of(holder->forward->function());
    Writes writes = writes_of(holder->module);
    holder->copies_inputs = writes.tensors;
    holder->serialize_runs = writes.state;
    // A quantized model runs under the engine its weights were packed for, named or not.
    holder->has_engine = engine != nullptr || is_quantized(holder->module);
    holder->engine = hold->engine();
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

// Takes `value` by value: the tuple or list it holds is released on return, so that
// afterwards the tensors are referenced by `tensors` alone (own_outputs counts on it).
void collect(c10::IValue value, Tensors& tensors) {
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

// Whether `tensor`'s memory is a caller's input, lent for the call only.
bool borrows_input(const at::Tensor& tensor, const ptm_input* inputs, size_t n_inputs) {
  const void* storage = tensor.storage().data();
  if (inputs == nullptr || storage == nullptr) return false;
  for (size_t i = 0; i < n_inputs; ++i) {
    if (storage == inputs[i].data) return true;
  }
  return false;
}

// Makes every output memory that only its holders own. An output may be a view of an
// input (`x`, `x[0]`, `x.view(...)`), whose memory the caller may free or change once
// the call returns, or of the model's own state (a buffer it returns and later updates
// in place), which another call may write while the caller reads: such an output is
// copied. Outputs sharing memory with each other (`y` and `y[0]`) stay as they are.
void own_outputs(Tensors& tensors, const ptm_input* inputs, size_t n_inputs) {
  for (auto& t : tensors) {
    if (!t.defined() || !t.has_storage()) continue;
    // Held elsewhere: the tensor itself (an attribute returned as it is), or its memory
    // through another tensor than the outputs (a view of an attribute).
    const c10::TensorImpl* impl = t.unsafeGetTensorImpl();
    const c10::StorageImpl* storage = t.storage().unsafeGetStorageImpl();
    size_t handles = 0;
    std::vector<const c10::TensorImpl*> impls;
    for (const auto& other : tensors) {
      if (!other.defined() || !other.has_storage()) continue;
      if (other.unsafeGetTensorImpl() == impl) ++handles;
      if (other.storage().unsafeGetStorageImpl() == storage &&
          std::find(impls.begin(), impls.end(), other.unsafeGetTensorImpl()) == impls.end())
        impls.push_back(other.unsafeGetTensorImpl());
    }
    bool shared = t.use_count() > handles || t.storage().use_count() > impls.size();
    if (shared || borrows_input(t, inputs, n_inputs)) t = t.clone(at::MemoryFormat::Contiguous);
  }
}

// Under OpenMP a thread count is per thread: at::set_num_threads sets the calling
// thread's, and another thread takes the new count only at its first parallel region.
// A thread that had already run a model kept its old count, so each run first takes
// the count set last, when it changed since this thread last looked.
std::atomic<int> thread_count{0};
std::atomic<unsigned> thread_count_changes{0};

void follow_thread_count() {
  thread_local unsigned seen = 0;
  unsigned changes = thread_count_changes.load();
  if (changes == seen) return;
  at::set_num_threads(thread_count.load());
  seen = changes;
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
    // The caller owns this reference (no allocation per output); ptm_output_free drops it.
    out.owner = t.unsafeReleaseTensorImpl();
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

int ptm_module_serializes_runs(const ptm_module* module) { return module->serialize_runs ? 1 : 0; }

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
    follow_thread_count();
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
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (type_code(tensors[i].scalar_type()) < 0)
        throw std::runtime_error("output " + std::to_string(i) + " holds " + std::string(c10::toString(tensors[i].scalar_type())) +
                                 " elements, which ptm cannot hand over (it takes float32, float64, int64, int32, int16, int8, uint8, bool, float16)");
    }
    for (const auto& t : tensors) {
      if (t.dim() > PTM_MAX_RANK)
        throw std::runtime_error("an output has " + std::to_string(t.dim()) + " dimensions, ptm supports at most " +
                                 std::to_string(PTM_MAX_RANK));
    }
    for (auto& t : tensors) {
      if (!t.is_contiguous()) t = t.contiguous();
    }
    own_outputs(tensors, module->copies_inputs ? nullptr : inputs, n_inputs);
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

void ptm_output_free(ptm_output* output) {
  c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>::reclaim(static_cast<c10::TensorImpl*>(output->owner));
  output->owner = nullptr;
}

void ptm_string_free(char* message) {
  if (message != out_of_memory) std::free(message);
}

const char* ptm_quantized_engine(void) {
  at::QEngine engine;
  try {
    engine = EngineHold().engine();
  } catch (...) {
    return "none";
  }
  if (auto x86 = x86_engine(); x86 && engine == *x86) return "x86";
  switch (engine) {
    case at::QEngine::QNNPACK: return "qnnpack";
    case at::QEngine::FBGEMM: return "fbgemm";
    case at::QEngine::ONEDNN: return "onednn";
    default: return "none";
  }
}

char* ptm_set_num_threads(int32_t threads) {
  return guarded([&] {
    if (threads < 0) throw std::runtime_error("the thread count must not be negative");
    int count = threads == 0 ? at::intraop_default_num_threads() : threads;
    at::set_num_threads(count);
    thread_count.store(count);
    thread_count_changes.fetch_add(1);
  });
}

int32_t ptm_num_threads(void) {
  try {
    follow_thread_count();
    return at::get_num_threads();
  } catch (...) {
    return 1;
  }
}

}  // extern "C"
