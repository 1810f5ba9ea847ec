// What Qwen3 and Gemma 3 add to the Llama layer, shared by the training passes
// (model/transformer.c) and the KV-cache decoder (model/decoder.c), and the reading of their
// config.json (model_type qwen3, gemma3_text, gemma3). The math follows transformers'
// modeling_qwen3.py and modeling_gemma3.py; docs/design.md, "Architectures", lists it.
#ifndef MEDTUNE_MODEL_ARCH_H
#define MEDTUNE_MODEL_ARCH_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "model/model.h"

// 1 when layer l attends within the sliding window (gemma3 sliding_attention layers).
int arch_layer_sliding(const model_config *c, int l);
// 1 when layer l uses the local rope tables (rope_local_theta) rather than the global ones.
int arch_layer_local_rope(const model_config *c, int l);

// Rotary tables of the sliding layers: base rope_local_theta, no scaling (transformers'
// sliding_attention rope parameters are the default rope).
void arch_rope_local_init(float *cos, float *sin, int P, int D, const model_config *c);

// start_sw[n] = max(start[n], t - window + 1) for row n = b*T + t: transformers' sliding mask
// keeps key s for query t when s > t - window (masking_utils.sliding_window_overlay).
void arch_sliding_starts(int32_t *start_sw, const int32_t *start, int B, int T, int window);

// Fills the qwen3 / gemma3 fields of c from a config.json object (for gemma3, the object
// holding the text model: the root or its text_config). c->arch is set; the common fields
// (hidden_size, heads, head_dim, eps, bos/eos, tie_word_embeddings) are already read.
int arch_hf_config(model_config *c, const cJSON *root, const char *file);

// Gemma RMSNorm weights as held in memory: 1 + w (transformers: x * (1.0 + w.float())).
void arch_norm_plus_one(float *w, int64_t n);

#endif

// The whole config of a gemma3_text / gemma3 config.json (root is the file's object): the text
// model's object (root, or root.text_config for gemma3), with Gemma3TextConfig's defaults for
// the keys it leaves out (Hub configs of gemma3 list only what differs). Validates.
int arch_gemma3_config(model_config *c, const cJSON *root, const char *file);

// The k-th other name (k = 0, 1) a weight `name` ("model.layers.0...", "lm_head.weight") has in
// a multimodal gemma3 checkpoint: "model.language_model.layers.0..." (transformers >= 4.52)
// or "language_model.model.layers.0..." (the Hub files of Gemma 3 and MedGemma). 0 when
// there is none.
int arch_hf_name_variant(char *out, size_t size, const char *name, int k);

// The qwen3 / gemma3 fields of c from a GGUF file's `<arch>.*` metadata and tensor list, as
// llama.cpp reads them (c->arch and the common fields are set). Gemma norms are stored as
// 1 + w by llama.cpp's converter, which is how they are held in memory: no conversion.
int arch_gguf_config(const gguf_file *f, model_config *c);
