// C declaration of the Rust entry point, for the app's bridging header.
#include <stddef.h>
#include <stdint.h>

// Reads len (16) features, writes up to capacity scores; returns the count or -1.
int32_t my_app_classify(const float *features, size_t len, float *scores, size_t capacity);
