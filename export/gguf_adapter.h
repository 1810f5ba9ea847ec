// LoRA adapters as GGUF files that llama.cpp loads with `--lora` (llama-adapter.cpp), laid out
// as its convert_lora_to_gguf.py writes them:
//   general.architecture  "llama" (llama, mistral bases) or "qwen2"
//   general.type "adapter", adapter.type "lora", general.name, general.quantization_version 2
//   adapter.lora.alpha    float32 = scale * r, so llama.cpp's alpha / r gives medtune's scale
//                         exactly, rsLoRA's alpha / sqrt(r) included
//   blk.N.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.weight.lora_a  F32,
//     ne [in, r] (PEFT's [r, in] A), and .lora_b F32, ne [r, out] (PEFT's [out, r] B)
// For `llama` the rows of B of q_proj/k_proj are permuted as llama.cpp permutes the base Q/K
// weights (per head, HF row a*D/2 + j goes to row 2*j + a); A is unchanged.
#ifndef MEDTUNE_EXPORT_GGUF_ADAPTER_H
#define MEDTUNE_EXPORT_GGUF_ADAPTER_H

#include "model/lora.h"
#include "model/model.h"

// Writes the adapter to `path` atomically; `name` becomes general.name.
int gguf_adapter_write(const char *path, const lora_adapter *a, const model_config *mc,
                       const char *name);

#endif
