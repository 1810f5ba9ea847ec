// Writes the weights of a Hugging Face model directory as transformers' save_pretrained does:
// one model.safetensors, or, above max_shard_bytes, model-0000i-of-0000n.safetensors shards
// plus model.safetensors.index.json {"metadata": {"total_size"}, "weight_map"}. Tensors are
// produced one at a time by a callback, so the model never has to fit in memory.
#ifndef MEDTUNE_EXPORT_HF_SHARDS_H
#define MEDTUNE_EXPORT_HF_SHARDS_H

#include <stdint.h>

#include "formats/safetensors.h"

// Tensors (data fields ignored) go into shards in the given order; fetch(ctx, i) supplies the
// bytes of tensors[i]. Writes into `dir` (which must exist); each file is atomic.
// *n_shards receives the number of safetensors files written.
int hf_shards_write(const char *dir, const st_write_tensor *tensors, int n, const st_meta *meta,
                    int n_meta, uint64_t max_shard_bytes, st_fetch_fn fetch, void *ctx,
                    int *n_shards);

#endif
