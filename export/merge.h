// `medtune merge`: folds a LoRA adapter into its base model, W' = W + scale * B A computed in
// fp32 for every adapted projection, and writes a Hugging Face directory transformers loads.
//   Hugging Face base: every tensor keeps its dtype (F32/F16/BF16; merged ones rounded to
//     nearest even), all other tensors are copied byte for byte, config.json and the tokenizer
//     files are copied.
//   GGUF base: tensors are dequantized, Q/K rows put back in HF order, and written as F32
//     (default) or F16; config.json, generation_config.json and the tokenizer files
//     (tokenizer.json, tokenizer_config.json, special_tokens_map.json) are generated from the
//     GGUF metadata.
//   GGUF base, OUT ending in .gguf: one GGUF file llama.cpp loads, the base's metadata and
//     tokenizer copied, llama.cpp's tensor names and Q/K order kept, matrices written in the
//     --type (or each in its own type), adapted ones merged in fp32 then quantized once.
// The input is mapped and the output streamed one tensor at a time, so peak memory is about
// one tensor in fp32 plus one in the output dtype, whatever the model's size.
#ifndef MEDTUNE_EXPORT_MERGE_H
#define MEDTUNE_EXPORT_MERGE_H

#include <stdint.h>

#include "formats/safetensors.h"

// The default limit above which model.safetensors is sharded, as --max-shard-size writes it.
#define MERGE_DEFAULT_MAX_SHARD_SIZE "2G"
// "2G", "500M", "4096" -> bytes (K, M, G are powers of 1024; a trailing B is allowed);
// 0 when malformed.
uint64_t merge_parse_size(const char *s);

typedef struct {
    int gguf_dtype_f16;        // GGUF base into a directory: write F16 instead of F32
    int gguf_type_same;        // GGUF output: every matrix keeps the base's type ...
    uint32_t gguf_type;        // ... or else becomes this ggml type (norms stay F32)
    uint64_t max_shard_bytes;  // shard the output above this size (0 = the default, 2 GiB)
} merge_options;

typedef struct {
    int from_gguf;
    int n_tensors;  // tensors written
    int n_merged;   // projections the adapter changed
    int n_shards;
    uint64_t bytes;       // tensor bytes written
    char dtypes[64];      // output dtypes, e.g. "BF16" or "F32"
} merge_report;

// Writes the merged model into out_dir, which must not exist or be empty: the files are
// written into "<out_dir>.partial" and renamed into place once complete. An out_dir ending in
// ".gguf" is a GGUF file instead (the base must be GGUF; the file must not exist), written
// atomically.
int merge_model(const char *model_path, const char *adapter_dir, const char *out_dir,
                const merge_options *opts, merge_report *rep);

#endif
