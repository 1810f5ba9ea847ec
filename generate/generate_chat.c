// The prompt of a chat turn: the conversation as the model's chat template renders it, then
// what the template's add_generation_prompt appends before the assistant's answer.
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "data_prep/chat_template.h"
#include "generate/generate.h"

// transformers' add_generation_prompt output per template; llama2 and alpaca need none (the
// user turn already ends with " [/INST]" / "### Response:\n").
static const char *generation_prompt(chat_template_kind k) {
    switch (k) {
    case CHAT_TEMPLATE_CHATML: return "<|im_start|>assistant\n";
    case CHAT_TEMPLATE_LLAMA3: return "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case CHAT_TEMPLATE_ZEPHYR:
    case CHAT_TEMPLATE_PHI3: return "<|assistant|>\n";
    case CHAT_TEMPLATE_GEMMA: return "<start_of_turn>model\n";
    // enable_thinking=False, the form medtune trains on (an empty think block as prompt)
    case CHAT_TEMPLATE_QWEN3: return "<|im_start|>assistant\n<think>\n\n</think>\n\n";
    case CHAT_TEMPLATE_LLAMA2:
    case CHAT_TEMPLATE_ALPACA: return "";
    }
    return "";
}

static int32_t end_of_turn_id(const tokenizer *tok, chat_template_kind k) {
    const char *s = k == CHAT_TEMPLATE_CHATML || k == CHAT_TEMPLATE_QWEN3 ? "<|im_end|>"
                    : k == CHAT_TEMPLATE_LLAMA3                           ? "<|eot_id|>"
                    : k == CHAT_TEMPLATE_GEMMA                            ? "<end_of_turn>"
                    : k == CHAT_TEMPLATE_PHI3                             ? "<|end|>"
                                                                          : NULL;
    int32_t id = s ? tokenizer_token_id(tok, s) : -1;
    return id >= 0 ? id : tokenizer_eos_id(tok);
}

int generate_chat_prompt(const tokenizer *tok, const char *template_name, const char *system,
                         const char *user, char **prompt, int32_t *end_of_turn) {
    *prompt = NULL;
    chat_template tpl;
    if (chat_template_init(&tpl, template_name, tok)) return -1;
    conversation conv = {0};
    chat_render r = {0};
    int rc = 0;
    if (system) rc = conversation_add(&conv, CHAT_ROLE_SYSTEM, system, strlen(system), NULL, 0);
    if (!rc) rc = conversation_add(&conv, CHAT_ROLE_USER, user, strlen(user), NULL, 0);
    if (!rc) rc = chat_template_render(&tpl, &conv, &r);
    if (!rc && strbuf_puts(&r.text, generation_prompt(tpl.kind)))
        rc = err_set("chat prompt: out of memory");
    if (!rc && !(*prompt = strbuf_take(&r.text))) rc = -1;
    if (!rc) *end_of_turn = end_of_turn_id(tok, tpl.kind);
    chat_render_free(&r);
    conversation_free(&conv);
    chat_template_free(&tpl);
    return rc;
}

int generate_chat(const model *m, const lora_adapter *lora, const tokenizer *tok,
                  const char *template_name, const char *system, const char *user_msg,
                  const generate_options *o, generate_piece_fn on_piece, void *user,
                  generate_result *res) {
    memset(res, 0, sizeof *res);
    char *prompt;
    int32_t eot;
    if (generate_chat_prompt(tok, template_name, system, user_msg, &prompt, &eot)) return -1;
    generate_options chat = *o;
    chat.add_special = 0;
    int rc = generate_options_add_stop(&chat, eot);
    if (!rc) rc = generate_text(m, lora, tok, prompt, &chat, on_piece, user, res);
    free(prompt);
    return rc;
}
