// Text generation on top of model/decoder.h: sampling, the generation loop with stop tokens,
// text streamed as complete UTF-8, and one chat turn in the model's chat template.
#ifndef MEDTUNE_GENERATE_GENERATE_H
#define MEDTUNE_GENERATE_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "model/decoder.h"
#include "tokenizer/tokenizer.h"

// Temperature and nucleus (top-p) sampling. temperature 0 is greedy (argmax, lowest id on
// ties); top_p keeps the smallest set of most probable tokens whose mass reaches top_p (at
// least one token), renormalised.
typedef struct {
    float temperature;
    float top_p;
    int V;
    rng_state rng;
    float *probs;    // [V]
    int32_t *order;  // [V]
} sampler;

int sampler_init(sampler *s, int V, float temperature, float top_p, uint64_t seed);
void sampler_free(sampler *s);
int32_t sampler_sample(sampler *s, const float *logits);
// Index of the largest value, the lowest index among equals.
int32_t logits_argmax(const float *logits, int V);

#define GENERATE_MAX_STOP 16

typedef struct {
    int max_new;        // tokens to generate at most (> 0)
    float temperature;  // 0 = greedy
    float top_p;        // (0, 1]
    uint64_t seed;
    int add_special;    // encode the prompt text with BOS as the tokenizer adds it
    int32_t stop_ids[GENERATE_MAX_STOP];  // generation ends after any of these
    int n_stop;
} generate_options;

// Defaults: max_new 256, greedy, top_p 1, seed 42, add_special 1, and the stop ids of
// generate_options_stop_at_eos (m and tok may be NULL: no stop ids from them).
void generate_options_default(generate_options *o, const model *m, const tokenizer *tok);
// Adds the model's eos ids (config eos_token_id, int or list) and the tokenizer's EOS.
int generate_options_stop_at_eos(generate_options *o, const model *m, const tokenizer *tok);
// Adds a stop id (ignores duplicates and negative ids); fails when the list is full.
int generate_options_add_stop(generate_options *o, int32_t id);

typedef enum {
    GENERATE_STOP_EOS,      // a stop token was generated (it is the last id)
    GENERATE_STOP_LENGTH,   // max_new tokens
    GENERATE_STOP_CONTEXT,  // the context (max_position_embeddings) is full
} generate_stop;

typedef struct {
    id_vec prompt_ids;
    id_vec ids;       // generated ids, the stop token included
    char *text;       // the streamed text of the generated ids (stop token left out)
    size_t text_len;
    generate_stop stop;
    double prefill_seconds, decode_seconds;
    int64_t positions_computed;  // token positions run through the transformer
} generate_result;

void generate_result_free(generate_result *r);
const char *generate_stop_name(generate_stop s);

// Receives each decoded piece of text as soon as it is complete UTF-8.
typedef void (*generate_piece_fn)(const char *piece, size_t len, void *user);

// Incremental detokenization: ids pushed one at a time come out as pieces of text that are
// always complete UTF-8 characters and concatenate to decode(ids) (special tokens skipped).
// Decoding one token alone is wrong for byte-level BPE (a character split across tokens) and
// SentencePiece (a word's leading space is dropped at the start of a decode), so each push
// decodes a short window twice: ids[prefix, read) already printed and ids[prefix, end). The
// difference is emitted once it does not end in U+FFFD (an incomplete character).
typedef struct {
    const tokenizer *tok;
    id_vec ids;
    size_t prefix, read;
    // Everything emitted so far (NUL-terminated). Not a strbuf: callers read text and len.
    char *text;
    size_t len, cap;
    generate_piece_fn on_piece;
    void *user;
} text_stream;

// `context`: the last few prompt ids, so that the first new word keeps its leading space
// (only the last TEXT_STREAM_CONTEXT are used); they are not emitted.
#define TEXT_STREAM_CONTEXT 5
int text_stream_init(text_stream *s, const tokenizer *tok, const int32_t *context, size_t n,
                     generate_piece_fn on_piece, void *user);
int text_stream_push(text_stream *s, int32_t id);
// Emits what is left, an incomplete last character included (as U+FFFD).
int text_stream_finish(text_stream *s);
void text_stream_free(text_stream *s);

// Generates from prompt ids. on_piece may be NULL. The context is sized to
// min(max_position_embeddings, prompt + max_new); a prompt that leaves no room for one new
// token is an error.
int generate_ids(const model *m, const lora_adapter *lora, const tokenizer *tok,
                 const int32_t *prompt, size_t n_prompt, const generate_options *o,
                 generate_piece_fn on_piece, void *user, generate_result *res);

// Encodes prompt_text (with BOS when o->add_special) and generates.
int generate_text(const model *m, const lora_adapter *lora, const tokenizer *tok,
                  const char *prompt_text, const generate_options *o, generate_piece_fn on_piece,
                  void *user, generate_result *res);

// Renders [system?, user] with the chat template `template_name` (auto, chatml, llama2,
// llama3, alpaca, zephyr; see data_prep/chat_template.h) followed by the generation prompt
// (what the template puts before an assistant answer), into a malloc'd string. A NULL system
// uses the template's default system prompt, if any. *end_of_turn receives the id of the token
// that closes an assistant turn (<|im_end|>, <|eot_id|>, EOS), or -1. Encode the result with
// add_special 0: the template already holds BOS where the model expects it.
int generate_chat_prompt(const tokenizer *tok, const char *template_name, const char *system,
                         const char *user, char **prompt, int32_t *end_of_turn);

// One chat turn: generate_chat_prompt, then generate_text without adding BOS and with the
// end-of-turn token added to o's stop ids. This is `medtune generate --chat`.
int generate_chat(const model *m, const lora_adapter *lora, const tokenizer *tok,
                  const char *template_name, const char *system, const char *user_msg,
                  const generate_options *o, generate_piece_fn on_piece, void *user,
                  generate_result *res);

#endif
