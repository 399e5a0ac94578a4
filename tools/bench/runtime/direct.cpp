// The baseline: the Lite Interpreter called from C++ as PyTorch Mobile's C++ examples
// do it, with nothing of ptm in between.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/mobile/import.h>
#include <torch/csrc/jit/mobile/module.h>

#include <chrono>
#include <cstdio>

extern "C" void* ptm_bench_direct_load(const char* path) {
  try {
    return new torch::jit::mobile::Module(torch::jit::_load_for_mobile(std::string(path)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "direct load failed: %s\n", e.what());
    return nullptr;
  }
}

extern "C" void ptm_bench_direct_free(void* module) { delete static_cast<torch::jit::mobile::Module*>(module); }

// Seconds for `iterations` forwards of one [1, 16] float input; `sink` receives a sum of
// outputs so the work cannot be skipped. Negative on error.
extern "C" double ptm_bench_direct_run(void* handle, const float* input, size_t iterations, float* sink) {
  auto& module = *static_cast<torch::jit::mobile::Module*>(handle);
  try {
    float total = 0;
    auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < iterations; ++i) {
      c10::InferenceMode guard;
      at::Tensor x = at::from_blob(const_cast<float*>(input), {1, 16}, at::kFloat);
      at::Tensor out = module.forward({x}).toTensor();
      total += out.data_ptr<float>()[0];
    }
    auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    *sink = total;
    return seconds;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "direct forward failed: %s\n", e.what());
    return -1;
  }
}
