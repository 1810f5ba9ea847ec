// GGUF v3 writer (llama.cpp's file format): metadata key/values (scalars, strings, arrays of
// numbers or strings, or copied from an open GGUF file) and tensors of any ggml type
// formats/quant.h knows, laid out as the gguf-py writer does: header, KVs in insertion order,
// tensor infos, data section aligned to 32 bytes with every tensor padded to the alignment.
// Tensor data is borrowed until gguf_writer_write, or produced one tensor at a time by a fetch
// callback during the write (so a merge never holds more than one tensor); the file is
// streamed through an atomic writer.
#ifndef MEDTUNE_FORMATS_GGUF_WRITE_H
#define MEDTUNE_FORMATS_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"

typedef struct {
    char *name;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];  // ggml order: ne[0] is the innermost dimension
    uint32_t type;
    const void *data;
    size_t n_bytes;
} gguf_write_tensor;

typedef struct {
    uint8_t *kv;  // serialized key/values
    size_t kv_len, kv_cap;
    int64_t n_kv;
    gguf_write_tensor *tensors;
    int64_t n_tensors;
    size_t cap_tensors;
    int oom;  // an allocation failed; reported by gguf_writer_write
    // Called during the write for tensors added with data == NULL: returns tensor i's bytes
    // (valid until the next call) or NULL after recording an error.
    const void *(*fetch)(void *ctx, int64_t i);
    void *fetch_ctx;
} gguf_writer;

void gguf_writer_init(gguf_writer *w);
void gguf_writer_free(gguf_writer *w);

void gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_writer_add_f32(gguf_writer *w, const char *key, float v);
void gguf_writer_add_bool(gguf_writer *w, const char *key, int v);
void gguf_writer_add_str(gguf_writer *w, const char *key, const char *v);
// Arrays of n elements of a numeric type (UINT8..INT64, FLOAT32, FLOAT64, BOOL as uint8),
// `data` holding them little-endian.
void gguf_writer_add_arr(gguf_writer *w, const char *key, gguf_type elem_type, const void *data,
                         uint64_t n);
void gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);

// Copies key/value `kv` of an open gguf_file (any type, arrays of strings included).
void gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv);

// A tensor of ggml type `type` with dims ne[0..n_dims) (innermost first; ne[0] a multiple of
// the type's block size); `data` must hold quant_row_bytes(type, product of ne) bytes and stay
// valid until the write, or be NULL when w->fetch will produce it.
int gguf_writer_add_tensor(gguf_writer *w, const char *name, int n_dims, const int64_t *ne,
                           uint32_t type, const void *data);

// Writes the file atomically. Duplicate keys or tensor names are an error naming them.
int gguf_writer_write(gguf_writer *w, const char *path);

#endif
