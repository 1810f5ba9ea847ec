// safetensors (Hugging Face): 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}},
// then the data buffer. The reader maps the file and validates the whole header before any
// tensor data is touched; the writer produces files the `safetensors` library reads.
#ifndef MEDTUNE_FORMATS_SAFETENSORS_H
#define MEDTUNE_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/fileio.h"

typedef enum { ST_F32, ST_F16, ST_BF16, ST_I32, ST_I64, ST_U8 } st_dtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    size_t n_elements;
    const uint8_t *data;  // into the mapping; valid until safetensors_close
    size_t n_bytes;
} st_tensor;

typedef struct {
    char *key;
    char *value;
} st_meta;

typedef struct {
    char path[4096];
    mapped_file map;
    st_tensor *tensors;  // sorted by name
    int n_tensors;
    st_meta *meta;  // __metadata__ entries, sorted by key
    int n_meta;
} st_file;

size_t st_dtype_size(st_dtype d);
const char *st_dtype_name(st_dtype d);
int st_dtype_is_float(st_dtype d);

// On failure returns -1 with "<path>: <tensor or field>: <why>" and leaves `f` closed.
int safetensors_open(st_file *f, const char *path);
void safetensors_close(st_file *f);
// NULL when absent (no error recorded).
const st_tensor *safetensors_find(const st_file *f, const char *name);
// Value of a __metadata__ key, or NULL.
const char *safetensors_metadata(const st_file *f, const char *key);
// Converts a F32/F16/BF16 tensor to fp32 (exact); other dtypes are an error naming the tensor.
int st_tensor_to_f32(const st_file *f, const st_tensor *t, float *out);

typedef struct {
    const char *name;
    st_dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    const void *data;  // n_elements * dtype size bytes, little-endian
} st_write_tensor;

// Writes tensors (header keys sorted, data ordered by dtype size then name so every tensor
// stays aligned, header padded with spaces to a multiple of 8) atomically. `meta` holds
// n_meta key/value pairs for __metadata__ (may be NULL).
int safetensors_write(const char *path, const st_write_tensor *tensors, int n,
                      const st_meta *meta, int n_meta);

// Streaming variant for outputs larger than memory: the `data` fields are ignored and
// fetch(ctx, i) supplies the bytes of tensors[i] when the writer reaches it (valid until the
// next call), or NULL after recording an error. Tensors are fetched one at a time in file
// layout order, so only one tensor needs to exist in memory.
typedef const void *(*st_fetch_fn)(void *ctx, int index);
int safetensors_write_streamed(const char *path, const st_write_tensor *tensors, int n,
                               const st_meta *meta, int n_meta, st_fetch_fn fetch, void *ctx);

#endif
