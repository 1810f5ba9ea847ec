// Chat templates for instruction tuning, rendered exactly as the models' Jinja templates
// (transformers' apply_chat_template, no generation prompt) render a whole conversation:
//   chatml  <|im_start|>{role}\n{content}<|im_end|>\n   (SmolLM2, Qwen2.5: a built-in
//           default system prompt is taken from the model's template when recognised)
//   llama2  <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s>
//   llama3  <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>
//   zephyr  <|{role}|>\n{content}</s>\n
//   alpaca  the Stanford Alpaca prompt, "### Instruction:" / "### Input:" / "### Response:"
//   gemma   <bos><start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n
//           <start_of_turn>model\n{answer}<end_of_turn>\n   (Gemma 2/3, MedGemma: the system
//           prompt opens the first user turn, contents trimmed, roles alternate; Gemma 1/2's
//           template refuses a system message, and so does a gemma template recognised from it)
//   qwen3   chatml, with Qwen3's thinking tags: the last answer after the last user turn
//           opens with "<think>\n{reasoning}\n</think>\n\n" (empty reasoning when the
//           answer has none); reasoning written as "<think>...</think>" in an earlier answer
//           is dropped, as the template does
//   phi3    <|{role}|>\n{content}<|end|>\n, then the tokenizer's EOS after the last message
//           (Phi-3 / Phi-3.5 mini; Phi-3.5's drops a system message with empty content)
// The rendering is a sequence of segments; the trainable ones are each assistant answer
// with its closing token(s) (<|im_end|>, " </s>", <|eot_id|>, </s>, <end_of_turn>, <|end|>), everything
// else is prompt; qwen3's empty "<think>\n\n</think>\n\n" is prompt (add_generation_prompt
// supplies it when thinking is off), and of a block with reasoning everything after the
// opening "<think>\n" is trained with the answer. Token strings (BOS/EOS) come from the tokenizer, as HF passes them to Jinja.
#ifndef MEDTUNE_DATA_PREP_CHAT_TEMPLATE_H
#define MEDTUNE_DATA_PREP_CHAT_TEMPLATE_H

#include <stddef.h>

#include "common/strbuf.h"
#include "data_prep/document.h"
#include "tokenizer/tokenizer.h"

typedef enum {
    CHAT_TEMPLATE_CHATML,
    CHAT_TEMPLATE_LLAMA2,
    CHAT_TEMPLATE_LLAMA3,
    CHAT_TEMPLATE_ALPACA,
    CHAT_TEMPLATE_ZEPHYR,
    CHAT_TEMPLATE_GEMMA,
    CHAT_TEMPLATE_QWEN3,
    CHAT_TEMPLATE_PHI3,
} chat_template_kind;

typedef struct {
    chat_template_kind kind;
    char *default_system;  // chatml: system prompt used when the conversation has none
    char bos[64], eos[64]; // token strings ("" when the tokenizer has none)
    int alpaca_bos;        // alpaca: start with BOS (the tokenizer adds one by default)
    int skip_empty_system; // phi3: Phi-3.5's template, which writes no empty system turn
    int refuse_system;     // gemma: Gemma 1/2's template, which raises on a system message
} chat_template;

// `name`: chatml, llama2, llama3, alpaca, zephyr, gemma, qwen3, phi3, or auto (recognise the tokenizer's
// chat_template; an error lists the known names when it is none of them).
int chat_template_init(chat_template *t, const char *name, const tokenizer *tok);
void chat_template_free(chat_template *t);
const char *chat_template_name(const chat_template *t);

typedef struct {
    size_t start, len;
    int trainable;
} chat_segment;

typedef struct {
    strbuf text;
    chat_segment *segs;
    size_t n_segs, cap_segs;
} chat_render;

// Renders `c` into r (reset first). Fails (message without location) on conversations the
// template cannot express, e.g. non-alternating turns for llama2.
int chat_template_render(const chat_template *t, const conversation *c, chat_render *r);
void chat_render_free(chat_render *r);

#endif
