/* A stand-in for PyTorch's libpytorch_jni_lite.so on a desktop JVM, where the Android AAR
 * that ships the real one does not exist. It only reports, when the JVM loads it, whether
 * the app's Rust library was already loaded: Models.kt must load it first. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void loaded(void) {
    const char *line = dlopen("libmy_mobile_lib.so", RTLD_NOW | RTLD_NOLOAD)
        ? "pytorch_jni_lite stand-in loaded after the app's library\n"
        : "pytorch_jni_lite stand-in loaded before the app's library\n";
    ssize_t written = write(1, line, strlen(line));
    (void)written;
}
