// An app that logs ExecuTorch itself: it registers its own PAL log function before ptm
// loads a program, which ptm must keep (tests/tests/threads.rs, through threads_probe).
#include <executorch/runtime/platform/platform.h>

#include <cstring>
#include <mutex>
#include <string>

namespace {
std::mutex lock;
std::string lines;

void app_log(et_timestamp_t, et_pal_log_level_t, const char*, const char*, size_t, const char* text, size_t length) {
  std::lock_guard<std::mutex> hold(lock);
  lines.append(text, length);
  if (lines.empty() || lines.back() != '\n') lines += '\n';
}
}  // namespace

extern "C" int ptm_test_register_app_log() {
  return executorch::runtime::register_pal(executorch::runtime::PalImpl::create(app_log, __FILE__)) ? 1 : 0;
}

// Copies what the app's log received (cut to `capacity - 1` bytes) and its NUL to `out`.
extern "C" void ptm_test_app_log(char* out, size_t capacity) {
  std::lock_guard<std::mutex> hold(lock);
  size_t length = lines.size() < capacity - 1 ? lines.size() : capacity - 1;
  std::memcpy(out, lines.data(), length);
  out[length] = '\0';
}
