/* The C boundary between ptm and ExecuTorch's native runtime (Program/Method through
 * the extension Module). The same source is compiled into the build-time runner that
 * verifies each .pte and into the `ptm` runtime's `executorch` backend.
 *
 * Every function that can fail returns NULL on success or a string with ExecuTorch's
 * error, freed with ptm_et_string_free (never NULL on failure: when the message cannot
 * be allocated, a static one says so). No C++ exception crosses this boundary. Inputs
 * and outputs are ptm_tensor.h's, shared with the Lite Interpreter's shim: an output is
 * copied out of the method's planned memory (which the next run reuses) into one block,
 * its `owner`.
 *
 * Loading, freeing and ptm_et_set_num_threads exclude each other; one module runs one
 * call at a time (the caller's lock); modules run in parallel. */
#ifndef PTM_EXECUTORCH_H
#define PTM_EXECUTORCH_H

#include <stddef.h>
#include <stdint.h>

#include "ptm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ptm_et_module ptm_et_module;

/* The size in bytes of one element of type `code`, or 0 for a code ptm does not know. */
size_t ptm_et_element_size(int32_t code);

/* The length of the ExecuTorch program in `data`: all of it, or what precedes the
 * identity record ptm-build appends to each .pte (its last 8 bytes are "PTMPTE01").
 * ExecuTorch reads only the program. */
size_t ptm_et_program_length(const uint8_t* data, size_t len);

/* The schema identifier this runtime reads ("ET12"), written to `out` with its NUL;
 * returns 0 when it cannot tell. */
int ptm_et_schema(char out[5]);

/* Program bytes are copied into a 16-byte aligned buffer the module owns unless they
 * are aligned already and `borrow` is 1 (then they must outlive the module). */
char* ptm_et_load_bytes(const uint8_t* data, size_t len, int borrow, ptm_et_module** out);
/* A .pte file, memory-mapped: it must not change while the module lives. */
char* ptm_et_load_file(const char* path, ptm_et_module** out);
void ptm_et_module_free(ptm_et_module* module);

/* Runs forward once. At most `capacity` outputs are stored; `count` receives how many
 * the method returned (none is stored when that is more than `capacity`, and none is
 * stored, with `count` 0, on failure). A dimension must fit ExecuTorch's 32-bit sizes. */
char* ptm_et_run(ptm_et_module* module, const ptm_input* inputs, size_t n_inputs,
                 ptm_output* outputs, size_t capacity, size_t* count);
/* Frees the block the output was copied into. */
void ptm_et_output_free(ptm_output* output);

/* Threads of the XNNPACK threadpool, for every model in the process; only while no
 * module is loaded (a loaded delegate keeps the pool it was created with). */
char* ptm_et_set_num_threads(int32_t threads);

void ptm_et_string_free(char* message);

#ifdef __cplusplus
}
#endif

#endif
