/* The C boundary between the ptm crate and PyTorch's Lite Interpreter.
 *
 * Every function that can fail returns NULL on success or a string with torch's
 * message, freed with ptm_string_free (never NULL on failure: when the message cannot
 * be allocated, a static one says so). No C++ exception crosses this boundary. Inputs
 * and outputs are ptm_tensor.h's, shared with ExecuTorch's shim: an output holds one
 * reference to a libtorch tensor, and its memory is nobody else's (an output that was a
 * view of an input or of the model's own state is handed over as a copy). */
#ifndef PTM_SHIM_H
#define PTM_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "ptm_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ptm_module ptm_module;

/* engine: NULL for float models, else "qnnpack", "fbgemm", ... */
char* ptm_module_load_bytes(const uint8_t* data, size_t len, const char* engine, ptm_module** out);
char* ptm_module_load_file(const char* path, const char* engine, ptm_module** out);
void ptm_module_free(ptm_module* module);

/* The .ptl's identity record ("" when it has none), valid while the module lives. */
const char* ptm_module_identity(const ptm_module* module);

/* 1 when an operator of the model may write a tensor in place, so inputs are copied
 * before each run (the caller lends them read-only); else 0. */
int ptm_module_copies_inputs(const ptm_module* module);

/* 1 when the model may change its own state while it runs (an attribute assigned or
 * written in place, a list or dict changed, XNNPACK's prepacked operators), so its runs
 * take turns; else 0. */
int ptm_module_serializes_runs(const ptm_module* module);

/* Outputs that did not fit the caller's buffer, held until taken or freed. */
typedef struct ptm_pending ptm_pending;

/* Runs `method` (NULL: forward) once; the outputs (one tensor, or a tuple/list of
 * tensors flattened) go to `outputs` when at most `capacity` of them; `count` receives
 * how many the model returned. When that is more than `capacity`, none is stored and
 * `*pending` holds them all instead, for ptm_pending_take or ptm_pending_free. */
char* ptm_module_run(const ptm_module* module, const char* method,
                     const ptm_input* inputs, size_t n_inputs,
                     ptm_output* outputs, size_t capacity, size_t* count, ptm_pending** pending);

/* Hands every pending output to `outputs` (room for `count` of them) and frees `pending`. */
void ptm_pending_take(ptm_pending* pending, ptm_output* outputs);
void ptm_pending_free(ptm_pending* pending);

/* Drops the output's reference to its tensor. */
void ptm_output_free(ptm_output* output);

void ptm_string_free(char* message);

/* The quantized engine now in force: "qnnpack", "x86", ... (static storage). */
const char* ptm_quantized_engine(void);

/* Intra-op threads, for every model in the process (at::set_num_threads; 0: libtorch's
 * default). Every thread takes the new count at its next run. */
char* ptm_set_num_threads(int32_t threads);
int32_t ptm_num_threads(void);

#ifdef __cplusplus
}
#endif

#endif
