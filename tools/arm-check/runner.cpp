// The ARM check's runner: loads a .ptl through ptm's own shim (ptm/shim), runs forward
// on inputs drawn from a fixed-seed generator, and prints every output element.
// Built for the host and for aarch64 from the same source, so both runs see the same
// inputs.
// usage: runner <model.ptl> <engine|none> <dtype:dim,dim,...:low:high>...
//   dtype is float32 or int64; values are uniform in [low, high).
#include "ptm_shim.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include <sstream>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: runner <model.ptl> <engine|none> <dtype:dims:low:high>...\n");
    return 2;
  }
  ptm_module* m = nullptr;
  const char* engine = std::strcmp(argv[2], "none") == 0 ? nullptr : argv[2];
  if (char* e = ptm_module_load_file(argv[1], engine, &m)) { std::fprintf(stderr, "load: %s\n", e); return 1; }
  std::vector<std::vector<float>> floats; std::vector<std::vector<int64_t>> longs;
  std::vector<std::vector<int64_t>> shapes; std::vector<ptm_input> inputs;
  uint64_t state = 20240601;
  auto next = [&]() { state = state * 6364136223846793005ULL + 1442695040888963407ULL; return (state >> 33) / double(1ULL << 31); };
  for (int i = 3; i < argc; ++i) {
    std::stringstream spec(argv[i]); std::string dtype, dims, lo, hi;
    std::getline(spec, dtype, ':'); std::getline(spec, dims, ':'); std::getline(spec, lo, ':'); std::getline(spec, hi, ':');
    std::vector<int64_t> shape; std::stringstream d(dims); std::string x; size_t n = 1;
    while (std::getline(d, x, ',')) { shape.push_back(std::stoll(x)); n *= shape.back(); }
    double low = std::stod(lo), high = std::stod(hi);
    shapes.push_back(shape);
    if (dtype == "float32") { floats.emplace_back(n); for (auto& v : floats.back()) v = float(low + (high - low) * next()); }
    else { longs.emplace_back(n); for (auto& v : longs.back()) v = int64_t(low + (high - low) * next()); }
  }
  size_t fi = 0, li = 0;
  for (int i = 3; i < argc; ++i) {
    bool f = std::strncmp(argv[i], "float32", 7) == 0;
    const void* data = f ? (const void*)floats[fi++].data() : (const void*)longs[li++].data();
    inputs.push_back(ptm_input{data, shapes[i - 3].data(), shapes[i - 3].size(), f ? 0 : 2});
  }
  ptm_output outs[8]; size_t count = 0;
  ptm_pending* pending = nullptr;
  if (char* e = ptm_module_run(m, nullptr, inputs.data(), inputs.size(), outs, 8, &count, &pending)) { std::fprintf(stderr, "run: %s\n", e); return 1; }
  if (pending) { ptm_pending_free(pending); std::fprintf(stderr, "run: more than 8 outputs\n"); return 1; }
  for (size_t o = 0; o < count; ++o) {
    const float* v = static_cast<const float*>(outs[o].data);
    for (size_t k = 0; k < outs[o].numel; ++k) std::printf("%.9g\n", v[k]);
    ptm_output_free(&outs[o]);
  }
  ptm_module_free(m);
  return 0;
}
