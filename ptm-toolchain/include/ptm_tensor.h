/* What crosses ptm's C boundary the same way for both runtimes: the Lite Interpreter's
 * shim (ptm/shim) and ExecuTorch's (ptm-toolchain/executorch) take inputs and hand
 * outputs back in these types, so the Rust side marshals and releases them in one place.
 * Element type codes match ptm::DType in Rust (checked by ptm-build/tests/dtype_tables.rs);
 * a code outside that table is refused by every side. */
#ifndef PTM_TENSOR_H
#define PTM_TENSOR_H

#include <stddef.h>
#include <stdint.h>

/* The most dimensions an input or output may have (ptm::MAX_RANK). */
#define PTM_MAX_RANK 12

/* A borrowed input: read in place for the duration of the call, never written. */
typedef struct {
  const void* data;
  const int64_t* shape;
  size_t rank;
  int32_t dtype;
} ptm_input;

/* An output, owned by the caller until the output-free function of the runtime that
 * made it (ptm_output_free, ptm_et_output_free). `owner` is what that function frees
 * (a reference to a libtorch tensor; the block ExecuTorch's shim copied the output into);
 * `data` holds `numel` contiguous elements of type `dtype` and `shape` holds `rank`
 * sizes, both valid until the output is freed and nobody else's to write. */
typedef struct {
  void* owner;
  const void* data;
  const int64_t* shape;
  size_t rank;
  size_t numel;
  int32_t dtype;
} ptm_output;

#endif
