// The build-time check of a .pte in the runtime an app links: runs every sample of a
// request through ptm_executorch.cpp and writes the outputs.
//
//   ptm_executorch_runner <model.pte> <samples.bin> <outputs.bin>
//
// Both files are little-endian records: u32 sample count, then per sample u32 tensor
// count and per tensor i32 dtype code, u32 rank, i64 shape[rank], u64 byte count and
// the bytes. Exit 0 with the outputs written, or 1 with ExecuTorch's message on stderr.
#include "ptm_executorch.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Tensor {
  int32_t dtype = 0;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

struct Reader {
  std::vector<uint8_t> data;
  size_t at = 0;
  template <typename T>
  T take() {
    if (at + sizeof(T) > data.size()) throw std::runtime_error("the samples file ends early");
    T value;
    std::memcpy(&value, data.data() + at, sizeof(T));
    at += sizeof(T);
    return value;
  }
};

template <typename T>
void put(std::vector<uint8_t>& out, T value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof(T));
}

std::vector<uint8_t> slurp(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(std::string("cannot read ") + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int fail(char* message) {
  std::fprintf(stderr, "%s\n", message);
  ptm_et_string_free(message);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <model.pte> <samples.bin> <outputs.bin>\n", argv[0]);
    return 2;
  }
  try {
    std::vector<uint8_t> program = slurp(argv[1]);
    // One thread, as the latency figures are taken; before any load, as ExecuTorch needs.
    if (char* error = ptm_et_set_num_threads(1)) return fail(error);
    ptm_et_module* module = nullptr;
    // As an app embeds it: from bytes, copied to an aligned buffer.
    // The program without the identity record the runtime checks and strips in Rust.
    size_t length = ptm_et_program_length(program.data(), program.size());
    if (char* error = ptm_et_load_bytes(program.data(), length, 0, &module)) return fail(error);
    Reader reader{slurp(argv[2])};
    std::vector<uint8_t> out;
    uint32_t samples = reader.take<uint32_t>();
    put(out, samples);
    for (uint32_t s = 0; s < samples; ++s) {
      uint32_t n = reader.take<uint32_t>();
      std::vector<Tensor> tensors(n);
      std::vector<ptm_input> inputs(n);
      for (uint32_t i = 0; i < n; ++i) {
        Tensor& t = tensors[i];
        t.dtype = reader.take<int32_t>();
        uint32_t rank = reader.take<uint32_t>();
        for (uint32_t d = 0; d < rank; ++d) t.shape.push_back(reader.take<int64_t>());
        uint64_t length = reader.take<uint64_t>();
        if (reader.at + length > reader.data.size()) throw std::runtime_error("the samples file ends early");
        t.bytes.assign(reader.data.begin() + reader.at, reader.data.begin() + reader.at + length);
        reader.at += length;
        inputs[i] = {t.bytes.data(), t.shape.data(), t.shape.size(), t.dtype};
      }
      std::vector<ptm_output> outputs(64);
      size_t count = 0;
      if (char* error = ptm_et_run(module, inputs.data(), n, outputs.data(), outputs.size(), &count)) return fail(error);
      if (count > outputs.size()) throw std::runtime_error("more than 64 outputs");
      put(out, static_cast<uint32_t>(count));
      for (size_t i = 0; i < count; ++i) {
        ptm_output& o = outputs[i];
        size_t element = ptm_et_element_size(o.dtype);
        if (element == 0) throw std::runtime_error("an output of an element type ptm does not know (code " + std::to_string(o.dtype) + ")");
        put(out, o.dtype);
        put(out, static_cast<uint32_t>(o.rank));
        for (size_t d = 0; d < o.rank; ++d) put(out, o.shape[d]);
        put(out, static_cast<uint64_t>(o.numel * element));
        const auto* bytes = static_cast<const uint8_t*>(o.data);
        out.insert(out.end(), bytes, bytes + o.numel * element);
        ptm_et_output_free(&o);
      }
    }
    ptm_et_module_free(module);
    std::ofstream file(argv[3], std::ios::binary);
    file.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
    if (!file) throw std::runtime_error(std::string("cannot write ") + argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
