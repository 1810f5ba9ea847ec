// Internals shared by the two merge paths (merge.c: Hugging Face bases, merge_gguf.c: GGUF
// bases). Not part of the public API.
#ifndef MEDTUNE_EXPORT_MERGE_IMPL_H
#define MEDTUNE_EXPORT_MERGE_IMPL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "export/merge.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/model_load.h"

typedef struct {
    const char *model_path;
    const char *out_dir;  // the ".partial" directory being filled
    const model_config *mc;
    const lora_adapter *a;
    const merge_options *opts;
    merge_report *rep;
} merge_job;

// The LoRA target a Hugging Face weight name belongs to ("model.layers.N.<module>.<proj>.weight"
// with the target enabled in `a`), or 0 when the adapter leaves it unchanged.
int merge_target_of(const lora_adapter *a, const char *hf_name, int *layer, lora_target *t);
// W += scale * B A in fp32, W in the Hugging Face layout: [out, in], or [in, out] for gpt2's
// Conv1D weights.
void merge_add_delta(float *W, const lora_adapter *a, int layer, lora_target t);
// W[out, in] += scale * B A in fp32 whatever the architecture (GGUF files store every matrix
// [out, in]: llama.cpp's converter transposes gpt2's Conv1D weights).
void merge_add_delta_rows(float *W, const lora_adapter *a, int layer, lora_target t);
// Converts n fp32 values to the output dtype (F32, F16 or BF16, round to nearest even).
void merge_f32_to_dtype(void *dst, const float *src, size_t n, st_dtype dtype);
// Drops the resident pages of a read-only file mapping range once it has been consumed, so
// the process's RSS stays at one tensor instead of growing to the whole input file.
void merge_release_pages(const void *p, size_t n);
// Fills the report's tensor count, bytes and dtype list from the output tensors.
void merge_report_tensors(merge_report *rep, const st_write_tensor *out, int n);
// Writes a text file into the job's output directory.
int merge_write_text(const merge_job *job, const char *name, const char *text);

// config.json keys of the qwen3 and gemma3 architectures, replacing or adding to the Llama ones
// `j` holds (merge_arch.c); nothing for other architectures. json_float writes a float as the
// shortest decimal that reads back as the same float.
void merge_arch_config(cJSON *j, const model_config *c, cJSON *(*json_float)(float));
// A GGUF base's weight in HF semantics: gemma3 norms, stored by llama.cpp as 1 + w, become w.
void merge_arch_from_gguf(float *w, const weight_slot *s, const model_config *c);

int merge_hf(const merge_job *job);
int merge_gguf(const merge_job *job);
// GGUF base into one GGUF file at out_path (export/merge_to_gguf.c).
int merge_to_gguf(const merge_job *job, const char *out_path);

#endif
