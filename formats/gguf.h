// GGUF (llama.cpp) v2/v3 reader: header, metadata key/values of every type, tensor infos and
// dequantization of a tensor to fp32 (formats/quant.h lists the types). The file is mapped and every
// count, string, array, offset and size is checked against the file length while parsing, so
// accessors never read outside the mapping.
#ifndef MEDTUNE_FORMATS_GGUF_H
#define MEDTUNE_FORMATS_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/fileio.h"
#include "formats/quant.h"

// The four bytes every GGUF file starts with.
#define GGUF_MAGIC "GGUF"

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
} gguf_type;

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct {
    char *key;
    gguf_type type;
    gguf_type elem_type;   // arrays only
    uint64_t n;            // arrays: element count; scalars: 1
    const uint8_t *value;  // scalar bytes, string (u64 length + bytes), or first array element
    const uint8_t **strs;  // arrays of strings: where each element (u64 length + bytes) starts
} gguf_kv;

typedef struct {
    char *name;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];  // ne[0] is the innermost (fastest-varying) dimension
    uint32_t type;              // ggml_type id
    uint64_t offset;            // relative to the data section
    size_t n_elements;
    size_t n_bytes;
    const uint8_t *data;  // into the mapping
} gguf_tensor;

typedef struct {
    char path[4096];
    mapped_file map;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;  // file offset of the tensor data section
    gguf_kv *kvs;
    int64_t n_kv;
    gguf_tensor *tensors;
    int64_t n_tensors;
} gguf_file;

// On failure returns -1 with "<path>: <key or tensor>: <why>" and leaves `f` closed.
// True when `path` names a GGUF file: a .gguf name, or a file that starts with GGUF_MAGIC
// (downloads are often renamed). Used to choose between a GGUF and a Hugging Face reader.
int gguf_path_is_gguf(const char *path);

int gguf_open(gguf_file *f, const char *path);
void gguf_close(gguf_file *f);

const char *gguf_type_name(gguf_type t);

// NULL when absent (no error recorded).
const gguf_kv *gguf_find(const gguf_file *f, const char *key);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

// Typed getters by key. A missing key or a value of another kind is an error
// "<path>: <key>: ...". Integers accept any integer type (and range-check), floats accept
// FLOAT32/FLOAT64, strings are returned as pointer + length into the mapping (not
// NUL-terminated; GGUF strings may contain any bytes).
int gguf_get_int(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_float(const gguf_file *f, const char *key, double *out);
int gguf_get_bool(const gguf_file *f, const char *key, int *out);
int gguf_get_str(const gguf_file *f, const char *key, const char **s, size_t *len);
// Copies a string value into buf (NUL-terminated); too long or containing NUL is an error.
int gguf_get_cstr(const gguf_file *f, const char *key, char *buf, size_t size);
// An array: its element type and count.
int gguf_get_arr(const gguf_file *f, const char *key, const gguf_kv **kv, gguf_type *elem_type,
                 uint64_t *n);

// Elements of an array kv (index checked): integers of any integer type (bools as 0/1),
// floats of FLOAT32/FLOAT64, strings as pointer + length.
int gguf_arr_int(const gguf_file *f, const gguf_kv *kv, uint64_t i, int64_t *out);
int gguf_arr_float(const gguf_file *f, const gguf_kv *kv, uint64_t i, double *out);
int gguf_arr_str(const gguf_file *f, const gguf_kv *kv, uint64_t i, const char **s, size_t *len);

// Dequantizes a tensor of any type quant_can_dequantize accepts into n_elements floats in
// ggml order (ne[0] fastest). Other types: "<path>: <tensor>: tensor type X is not supported
// (nearest supported: Y)".
int gguf_tensor_to_f32(const gguf_file *f, const gguf_tensor *t, float *out);

#endif
