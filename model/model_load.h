// Pieces shared by the two model loaders (Hugging Face directory, GGUF file).
#ifndef MEDTUNE_MODEL_MODEL_LOAD_H
#define MEDTUNE_MODEL_MODEL_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "common/sha256.h"
#include "model/model.h"

// One weight of the model: where it goes, its HF and GGUF names and its [rows, cols] shape
// (cols == 0 for vectors). A matrix is described by `mat` (the loader points it at the stored
// bytes); `dst` is its fp32 storage when model_alloc made one, and a vector's storage.
// qk_heads > 0 marks Q/K weights and biases whose rows llama.cpp permutes for `llama` GGUF
// files (the head count the permutation uses).
typedef struct {
    char hf_name[96];
    char gguf_name[64];
    float *dst;
    weight_mat *mat;
    int64_t rows, cols;
    int qk_heads;
    int hf_transposed;  // the HF file stores [cols, rows] (GPT-2's Conv1D): transposed at load
} weight_slot;

// Every weight model_alloc() created for m->cfg, in a fixed order (malloc'd array).
int weight_slots_list(model *m, weight_slot **slots, int *n);

// Adds one tensor, as its file stores it, to the hash of a model's weights (stored_sha256):
// the name, the dtype name, the dimensions in the file's order, then the bytes. The loaders
// call it for each weight slot in weight_slots_list order.
void model_hash_tensor(sha256_ctx *c, const char *name, const char *dtype, int n_dims,
                       const int64_t *dims, const void *data, uint64_t n_bytes);

// Distinct source dtype names with their tensor counts, formatted "Q4_1+F32" (most used first).
typedef struct {
    const char *names[16];
    int counts[16];
    int n;
} dtype_tally;

void dtype_tally_add(dtype_tally *t, const char *name);
void dtype_tally_format(const dtype_tally *t, char *out, size_t size);

// Parses a Hugging Face config.json text; `file` names it in errors. Validates the result.
int model_config_from_hf_json(model_config *cfg, const char *json, size_t len, const char *file);
const char *model_arch_name(model_arch a);

int model_load_hf(model *m, const char *dir, base_dtype dtype);
// The config of a .gguf file from its metadata alone (no tensor data is read).
int model_config_load_gguf(model_config *cfg, const char *path);
int model_load_gguf(model *m, const char *path);

// Undoes llama.cpp's Q/K row permutation: per head, GGUF row 2*j + a holds HF row a*D/2 + j.
// src and dst are [n_heads * head_dim, cols] (cols = 1 for a bias) and must not overlap.
void qk_rows_unpermute(float *dst, const float *src, int n_heads, int head_dim, int64_t cols);
// The same on rows of row_bytes bytes each, whatever their type (quantized rows move whole).
void qk_rows_unpermute_bytes(void *dst, const void *src, int n_heads, int head_dim,
                             size_t row_bytes);

#endif
