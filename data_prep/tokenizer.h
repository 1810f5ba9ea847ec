// Tokenizers identical to Hugging Face `tokenizers`: byte-level BPE (GPT-2, SmolLM2, Qwen2,
// Llama 3) and SentencePiece-style BPE (Llama 2, TinyLlama, Mistral), loaded from
// tokenizer.json (+ tokenizer_config.json, special_tokens_map.json) or from GGUF metadata.
#ifndef MEDTUNE_DATA_PREP_TOKENIZER_H
#define MEDTUNE_DATA_PREP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t *data;
    size_t len, cap;
} id_vec;

int id_vec_push(id_vec *v, int32_t id);
void id_vec_free(id_vec *v);

typedef struct tokenizer tokenizer;

// `path`: a HF model directory, a tokenizer.json file, or a .gguf file.
// Returns NULL with "<file>: <what is wrong>" in err_msg() on failure.
tokenizer *tokenizer_load(const char *path);
void tokenizer_free(tokenizer *t);

// Appends the ids of `text` (len bytes) to `out`. Added/special tokens in the text are
// matched as HF does. With add_special, BOS/EOS are added as the post-processor (or
// add_bos_token/add_eos_token) says, like HF encode(add_special_tokens=True).
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special,
                     id_vec *out);
// Decodes ids into a malloc'd NUL-terminated string, like HF decode(skip_special_tokens).
int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                     char **out, size_t *out_len);

int tokenizer_vocab_size(const tokenizer *t);
int tokenizer_bos_id(const tokenizer *t);  // -1 when none
int tokenizer_eos_id(const tokenizer *t);  // -1 when none
int tokenizer_adds_bos(const tokenizer *t);
// Id of an exact token string (added tokens included), or -1.
int tokenizer_token_id(const tokenizer *t, const char *token);
// The chat_template string from tokenizer_config.json or GGUF metadata, or NULL.
const char *tokenizer_chat_template(const tokenizer *t);
// Short description: "BPE byte-level", "BPE sentencepiece", ...
const char *tokenizer_kind(const tokenizer *t);
// Hex SHA-256 over the vocabulary, merges, added tokens and settings that change encoding;
// two tokenizers with the same fingerprint encode identically.
const char *tokenizer_fingerprint(const tokenizer *t);

#endif
