// A tiny Llama model that medtune creates by itself, so the whole pipeline (prep, train,
// export, merge, generate) can run where no real model can be downloaded. It is a Hugging Face
// directory that medtune and transformers load:
//   config.json             llama, tied embeddings, fp32
//   model.safetensors       seeded random weights: N(0, 0.02) matrices, RMSNorm weights 1
//                           (transformers' initialisation), so the untrained model predicts
//                           nearly uniform next tokens
//   tokenizer.json          byte-level BPE with the 256 byte tokens and no merges (one token
//                           per byte), plus <|endoftext|>, <|im_start|> and <|im_end|>
//   tokenizer_config.json   chatml chat_template (no default system prompt), bos <|im_start|>,
//                           eos <|im_end|>, pad <|endoftext|>
// Its answers are noise: it exists to exercise the pipeline, not to say anything.
#ifndef MEDTUNE_MODEL_TINY_MODEL_H
#define MEDTUNE_MODEL_TINY_MODEL_H

#include <stdint.h>

// Ids of the special tokens after the 256 byte tokens.
#define TINY_MODEL_ENDOFTEXT 256
#define TINY_MODEL_IM_START 257
#define TINY_MODEL_IM_END 258
#define TINY_MODEL_VOCAB 259

typedef struct {
    int hidden_size, intermediate_size, n_layers, n_heads, n_kv_heads;
    int max_position_embeddings;
    uint64_t seed;
} tiny_model_options;

// 4 layers, hidden 128, intermediate 352, 4 heads, 2 KV heads, context 1024, seed 42.
void tiny_model_options_default(tiny_model_options *o);

// Writes the model files into `dir` (created if needed; existing files are replaced). Every
// file is written atomically. The same options give byte-identical files.
int tiny_model_write(const char *dir, const tiny_model_options *o);

#endif
