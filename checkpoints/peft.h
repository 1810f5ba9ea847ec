// Hugging Face PEFT LoRA adapter directories (docs/formats.md): adapter_config.json (keys sorted)
// and adapter_model.safetensors with PEFT tensor names, fp32, metadata {"format": "pt"}.
#ifndef MEDTUNE_CHECKPOINTS_PEFT_H
#define MEDTUNE_CHECKPOINTS_PEFT_H

#include <stddef.h>

#include "model/lora.h"
#include "model/model.h"

// Writes the adapter into `dir` (created if needed); each file is written atomically.
int peft_adapter_write(const char *dir, const lora_adapter *a, const char *base_model);

// Reads the LoRA settings of a PEFT adapter directory (r, alpha, dropout, targets, rsLoRA).
// DoRA, rank/alpha patterns, layer subsets and non-LoRA adapters are refused with an error
// naming the field.
int peft_adapter_read_config(const char *dir, lora_config *cfg);

// The adapter's base_model_name_or_path into `out` ("" when the key is absent or not a string).
int peft_adapter_read_base_model(const char *dir, char *out, size_t n);

// Reads an adapter written by PEFT or medtune into `a`, which must already be initialised for
// the model with the adapter's config. Tensors are checked against the model's shapes; a
// missing, unexpected (embedding, DoRA magnitude, unsupported module) or mis-shaped tensor is
// an error naming it.
int peft_adapter_read_weights(const char *dir, lora_adapter *a);

// Convenience: read config, initialise `a` for the model, read weights.
int peft_adapter_load(const char *dir, const model_config *mc, lora_adapter *a);

#endif
