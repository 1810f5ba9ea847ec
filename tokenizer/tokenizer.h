// Tokenizers identical to Hugging Face `tokenizers`: byte-level BPE (GPT-2, SmolLM2, Qwen2,
// Llama 3) and SentencePiece-style BPE (Llama 2, TinyLlama, Mistral), loaded from
// tokenizer.json (+ tokenizer_config.json, special_tokens_map.json) or from GGUF metadata.
#ifndef MEDTUNE_TOKENIZER_TOKENIZER_H
#define MEDTUNE_TOKENIZER_TOKENIZER_H

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
// Invalid UTF-8 is not an error: each maximal ill-formed byte sequence is read as U+FFFD,
// exactly as Python's bytes.decode("utf-8", errors="replace") would before HF sees the text.
// Thread-safe: any number of threads may encode with one tokenizer at the same time.
// On failure (out of memory) returns -1 and leaves `out` as it was.
int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int add_special,
                     id_vec *out);
// Decodes ids into a malloc'd NUL-terminated string, like HF decode(skip_special_tokens).
// An id outside the vocabulary is an error (HF silently drops it). `out_len` may be NULL.
int tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, int skip_special,
                     char **out, size_t *out_len);

// Size of the id space (largest id + 1, added tokens included).
int tokenizer_vocab_size(const tokenizer *t);
int tokenizer_bos_id(const tokenizer *t);  // -1 when none
int tokenizer_eos_id(const tokenizer *t);  // -1 when none
// True when encode(add_special=1) starts with the BOS id.
int tokenizer_adds_bos(const tokenizer *t);
// The token string of an id as the tokenizer file spells it (byte-level alphabet, U+2581
// for spaces...), or NULL when the id is outside the vocabulary.
const char *tokenizer_token_str(const tokenizer *t, int32_t id);
// Id of an exact token string (added tokens included), or -1.
int tokenizer_token_id(const tokenizer *t, const char *token);
// The chat_template string from tokenizer_config.json or GGUF metadata, or NULL.
const char *tokenizer_chat_template(const tokenizer *t);
// Short description: "BPE byte-level", "BPE sentencepiece", ...
const char *tokenizer_kind(const tokenizer *t);
// Hex SHA-256 over the vocabulary, merges, added tokens and settings that change encoding;
// two tokenizers with the same fingerprint encode identically.
const char *tokenizer_fingerprint(const tokenizer *t);
// The tokenizer as a Hugging Face tokenizer.json (malloc'd text), whatever it was loaded from:
// HF `tokenizers` and tokenizer_load read it back to the same ids (and the same fingerprint).
// NULL with the error set when out of memory.
char *tokenizer_to_json(const tokenizer *t);

#endif
