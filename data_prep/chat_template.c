#include "data_prep/chat_template.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static const char *const NAMES[] = {
    [CHAT_TEMPLATE_CHATML] = "chatml", [CHAT_TEMPLATE_LLAMA2] = "llama2",
    [CHAT_TEMPLATE_LLAMA3] = "llama3", [CHAT_TEMPLATE_ALPACA] = "alpaca",
    [CHAT_TEMPLATE_ZEPHYR] = "zephyr", [CHAT_TEMPLATE_GEMMA] = "gemma",
    [CHAT_TEMPLATE_QWEN3] = "qwen3", [CHAT_TEMPLATE_PHI3] = "phi3",
};
#define KNOWN_NAMES "chatml, llama2, llama3, alpaca, zephyr, gemma, qwen3, phi3"

// Stanford Alpaca's preambles; the response header ends with a newline as in alpaca-lora
// and axolotl.
static const char ALPACA_INPUT[] =
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.";
static const char ALPACA_NO_INPUT[] =
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.";

const char *chat_template_name(const chat_template *t) { return NAMES[t->kind]; }

static int token_string(const tokenizer *tok, int id, char *out, size_t n) {
    out[0] = '\0';
    if (id < 0) return 0;
    int32_t ids[1] = {id};
    char *s = NULL;
    size_t len = 0;
    if (tokenizer_decode(tok, ids, 1, 0, &s, &len)) return -1;
    if (len >= n) {
        free(s);
        return err_set("token %d is too long for a chat template", id);
    }
    memcpy(out, s, len + 1);
    free(s);
    return 0;
}

// A chatml template with a literal system prompt for conversations without one
// ('<|im_start|>system\nYou are ...<|im_end|>\n' in SmolLM2 and Qwen2.5): returns it with
// Jinja string escapes resolved, or NULL.
static char *chatml_default_system(const char *tpl) {
    static const char open[] = "<|im_start|>system";
    for (const char *p = strstr(tpl, open); p; p = strstr(p + 1, open)) {
        const char *q = p + sizeof open - 1;
        if (*q == '\n') q++;
        else if (q[0] == '\\' && q[1] == 'n') q += 2;
        else continue;
        const char *end = strstr(q, "<|im_end|>");
        if (!end || end == q) continue;
        size_t n = (size_t)(end - q);
        if (memchr(q, '\'', n) || memchr(q, '"', n) || memchr(q, '{', n)) continue;
        char *out = malloc(n + 1);
        if (!out) return NULL;
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            if (q[i] == '\\' && i + 1 < n) {
                char e = q[++i];
                out[w++] = e == 'n' ? '\n' : e == 't' ? '\t' : e;
            } else {
                out[w++] = q[i];
            }
        }
        out[w] = '\0';
        return out;
    }
    return NULL;
}

static int recognise(const char *tpl, chat_template_kind *kind) {
    // Qwen3's template: ChatML plus <think> blocks placed after the last user query.
    if (strstr(tpl, "<|im_start|>") && strstr(tpl, "<think>") && strstr(tpl, "last_query_index"))
        return *kind = CHAT_TEMPLATE_QWEN3, 0;
    if (strstr(tpl, "<|im_start|>")) return *kind = CHAT_TEMPLATE_CHATML, 0;
    if (strstr(tpl, "<start_of_turn>") && strstr(tpl, "<end_of_turn>"))
        return *kind = CHAT_TEMPLATE_GEMMA, 0;
    if (strstr(tpl, "<|start_header_id|>")) {
        if (strstr(tpl, "Cutting Knowledge Date"))
            return err_set("the model's chat template is Llama 3.1+ (date header and tools), which "
                           "is none of the known templates (" KNOWN_NAMES "); set \"template\" explicitly");
        return *kind = CHAT_TEMPLATE_LLAMA3, 0;
    }
    if (strstr(tpl, "[INST]") && strstr(tpl, "<<SYS>>")) return *kind = CHAT_TEMPLATE_LLAMA2, 0;
    if (strstr(tpl, "<|user|>") && strstr(tpl, "<|assistant|>") && strstr(tpl, "<|end|>")) {
        // Phi-3-mini's first template (in its early GGUF files) drops system messages and
        // writes the assistant header with the user turn: a different rendering.
        if (!strstr(tpl, "<|system|>"))
            return err_set("the model's chat template is Phi-3's first one (no system turn), which is "
                           "none of the known templates; set \"template\": \"phi3\" (Phi-3's current one)");
        return *kind = CHAT_TEMPLATE_PHI3, 0;
    }
    if (strstr(tpl, "<|user|>") && strstr(tpl, "<|assistant|>") && strstr(tpl, "eos_token") &&
        !strstr(tpl, "<|end|>"))
        return *kind = CHAT_TEMPLATE_ZEPHYR, 0;
    if (strstr(tpl, "### Instruction:") && strstr(tpl, "### Response:"))
        return *kind = CHAT_TEMPLATE_ALPACA, 0;
    return err_set("the model's chat template is none of the known templates (" KNOWN_NAMES
                   "); set \"template\" to one of them");
}

int chat_template_init(chat_template *t, const char *name, const tokenizer *tok) {
    memset(t, 0, sizeof *t);
    if (!strcmp(name, "auto")) {
        const char *tpl = tokenizer_chat_template(tok);
        if (!tpl)
            return err_set("template \"auto\": the tokenizer has no chat_template; set \"template\" "
                           "to one of " KNOWN_NAMES);
        if (recognise(tpl, &t->kind)) return -1;
        if (t->kind == CHAT_TEMPLATE_CHATML) t->default_system = chatml_default_system(tpl);
        t->skip_empty_system = t->kind == CHAT_TEMPLATE_PHI3 && strstr(tpl, "'system' and message['content']");
        t->refuse_system = t->kind == CHAT_TEMPLATE_GEMMA && strstr(tpl, "System role not supported");
    } else {
        size_t i = 0;
        while (i < sizeof NAMES / sizeof NAMES[0] && strcmp(name, NAMES[i])) i++;
        if (i == sizeof NAMES / sizeof NAMES[0])
            return err_set("unknown template '%s' (expected auto, " KNOWN_NAMES ")", name);
        t->kind = (chat_template_kind)i;
    }
    if (token_string(tok, tokenizer_bos_id(tok), t->bos, sizeof t->bos) ||
        token_string(tok, tokenizer_eos_id(tok), t->eos, sizeof t->eos))
        return -1;
    if (!t->eos[0] && t->kind != CHAT_TEMPLATE_CHATML && t->kind != CHAT_TEMPLATE_LLAMA3 &&
        t->kind != CHAT_TEMPLATE_GEMMA && t->kind != CHAT_TEMPLATE_QWEN3)
        return err_set("template %s ends answers with the EOS token, but the tokenizer has none",
                       NAMES[t->kind]);
    t->alpaca_bos = tokenizer_adds_bos(tok);
    return 0;
}

void chat_template_free(chat_template *t) {
    free(t->default_system);
    t->default_system = NULL;
}

void chat_render_free(chat_render *r) {
    strbuf_free(&r->text);
    free(r->segs);
    memset(r, 0, sizeof *r);
}

static int put(chat_render *r, const char *s, size_t n, int trainable) {
    if (n == 0) return 0;
    size_t start = r->text.len;
    if (strbuf_append(&r->text, s, n)) return err_set("chat template: out of memory");
    if (r->n_segs && r->segs[r->n_segs - 1].trainable == trainable) {
        r->segs[r->n_segs - 1].len += n;
        return 0;
    }
    chat_segment *g = vec_grow(r->segs, &r->cap_segs, r->n_segs + 1, sizeof *g);
    if (!g) return err_set("chat template: out of memory");
    r->segs = g;
    r->segs[r->n_segs++] = (chat_segment){start, n, trainable};
    return 0;
}

static int puts_(chat_render *r, const char *s, int trainable) { return put(r, s, strlen(s), trainable); }

// Python's str.strip() (Jinja's trim) on ASCII whitespace; cleaned text has no other.
static void strip(const char *s, const char **start, size_t *n) {
    size_t len = strlen(s);
    while (len && strchr(" \t\n\r\f\v", *s)) s++, len--;
    while (len && strchr(" \t\n\r\f\v", s[len - 1])) len--;
    *start = s;
    *n = len;
}

// User content with alpaca's separate input appended after a blank line.
static int put_content(chat_render *r, const chat_message *m, int trainable) {
    if (puts_(r, m->content, trainable)) return -1;
    if (m->input && *m->input && (puts_(r, "\n\n", trainable) || puts_(r, m->input, trainable))) return -1;
    return 0;
}

// put_content's text appended to b, for the templates that trim or split it before it is
// rendered; a failed allocation here or in what b already holds is reported.
static int join_content(strbuf *b, const chat_message *m) {
    strbuf_puts(b, m->content);
    if (m->input && *m->input) strbuf_printf(b, "\n\n%s", m->input);
    return strbuf_failed(b) ? err_set("chat template: out of memory") : 0;
}

static int render_chatml(const chat_template *t, const conversation *c, chat_render *r) {
    if (t->default_system && (c->n == 0 || c->msgs[0].role != CHAT_ROLE_SYSTEM))
        if (puts_(r, "<|im_start|>system\n", 0) || puts_(r, t->default_system, 0) ||
            puts_(r, "<|im_end|>\n", 0))
            return -1;
    for (size_t i = 0; i < c->n; i++) {
        const chat_message *m = &c->msgs[i];
        int train = m->role == CHAT_ROLE_ASSISTANT;
        if (puts_(r, "<|im_start|>", 0) || puts_(r, chat_role_name(m->role), 0) || puts_(r, "\n", 0) ||
            put_content(r, m, train) || puts_(r, "<|im_end|>", train) || puts_(r, "\n", 0))
            return -1;
    }
    return 0;
}

// Templates without a system turn of their own (llama2, gemma): after an optional first
// system message, turn k must be a user turn when k is even and an assistant turn when odd.
static int turn_out_of_order(const chat_message *m, size_t k, const char *name) {
    if ((m->role == CHAT_ROLE_USER) == (k % 2 == 0) && m->role != CHAT_ROLE_SYSTEM) return 0;
    return err_set("template %s: roles must alternate user/assistant/user/... (after an optional "
                   "first system message)",
                   name);
}

// The content of a leading system message (NULL without one) and the index of the first turn
// after it.
static size_t leading_system(const conversation *c, const char **sys) {
    int has = c->n && c->msgs[0].role == CHAT_ROLE_SYSTEM;
    *sys = has ? c->msgs[0].content : NULL;
    return (size_t)has;
}

static int render_llama2(const chat_template *t, const conversation *c, chat_render *r) {
    const char *sys;
    size_t first = leading_system(c, &sys);
    strbuf content;
    strbuf_init(&content);
    int rc = 0;
    for (size_t i = first; i < c->n && !rc; i++) {
        const chat_message *m = &c->msgs[i];
        size_t k = i - first;
        strbuf_clear(&content);
        if (k == 0 && sys) strbuf_printf(&content, "<<SYS>>\n%s\n<</SYS>>\n\n", sys);
        rc = turn_out_of_order(m, k, "llama2") || join_content(&content, m);
        if (rc) break;
        const char *s;
        size_t n;
        strip(content.data, &s, &n);
        rc = m->role == CHAT_ROLE_USER
                 ? puts_(r, t->bos, 0) || puts_(r, "[INST] ", 0) || put(r, s, n, 0) || puts_(r, " [/INST]", 0)
                 : puts_(r, " ", 1) || put(r, s, n, 1) || puts_(r, " ", 1) || puts_(r, t->eos, 1);
    }
    strbuf_free(&content);
    return rc ? -1 : 0;
}

static int render_llama3(const chat_template *t, const conversation *c, chat_render *r) {
    for (size_t i = 0; i < c->n; i++) {
        const chat_message *m = &c->msgs[i];
        int train = m->role == CHAT_ROLE_ASSISTANT;
        if ((i == 0 && puts_(r, t->bos, 0)) || puts_(r, "<|start_header_id|>", 0) ||
            puts_(r, chat_role_name(m->role), 0) || puts_(r, "<|end_header_id|>\n\n", 0))
            return -1;
        const char *s;
        size_t n;
        strip(m->content, &s, &n);
        if (put(r, s, n, train)) return -1;
        if (m->input && *m->input) {
            strip(m->input, &s, &n);
            if (puts_(r, "\n\n", train) || put(r, s, n, train)) return -1;
        }
        if (puts_(r, "<|eot_id|>", train)) return -1;
    }
    return 0;
}

static int render_zephyr(const chat_template *t, const conversation *c, chat_render *r) {
    for (size_t i = 0; i < c->n; i++) {
        const chat_message *m = &c->msgs[i];
        int train = m->role == CHAT_ROLE_ASSISTANT;
        if (puts_(r, "<|", 0) || puts_(r, chat_role_name(m->role), 0) || puts_(r, "|>\n", 0) ||
            put_content(r, m, train) || puts_(r, t->eos, train) || puts_(r, "\n", 0))
            return -1;
    }
    return 0;
}

static int render_alpaca(const chat_template *t, const conversation *c, chat_render *r) {
    const char *preamble;
    size_t first = leading_system(c, &preamble);
    if (!preamble) {
        int has_input = first < c->n && c->msgs[first].input && *c->msgs[first].input;
        preamble = has_input ? ALPACA_INPUT : ALPACA_NO_INPUT;
    }
    if ((t->alpaca_bos && puts_(r, t->bos, 0)) || puts_(r, preamble, 0)) return -1;
    for (size_t i = first; i < c->n; i++) {
        const chat_message *m = &c->msgs[i];
        if (m->role == CHAT_ROLE_ASSISTANT) {
            if (puts_(r, m->content, 1) || puts_(r, t->eos, 1)) return -1;
            continue;
        }
        if (m->role == CHAT_ROLE_SYSTEM)
            return err_set("template alpaca: a system message is only allowed first");
        if (puts_(r, "\n\n### Instruction:\n", 0) || puts_(r, m->content, 0)) return -1;
        if (m->input && *m->input && (puts_(r, "\n\n### Input:\n", 0) || puts_(r, m->input, 0))) return -1;
        if (puts_(r, "\n\n### Response:\n", 0)) return -1;
    }
    return 0;
}

static int render_gemma(const chat_template *t, const conversation *c, chat_render *r) {
    const char *sys;
    size_t first = leading_system(c, &sys);
    if (sys && t->refuse_system)
        return err_set("template gemma: the model's template (Gemma 1/2) does not support a system message");
    if (puts_(r, t->bos, 0)) return -1;
    strbuf content;
    strbuf_init(&content);
    int rc = 0;
    for (size_t i = first; i < c->n && !rc; i++) {
        const chat_message *m = &c->msgs[i];
        size_t k = i - first;
        int train = m->role == CHAT_ROLE_ASSISTANT;
        // The template trims the content but not the system prefix put before it.
        strbuf_clear(&content);
        rc = turn_out_of_order(m, k, "gemma") || join_content(&content, m);
        if (rc) break;
        const char *s;
        size_t n;
        strip(content.data, &s, &n);
        rc = puts_(r, "<start_of_turn>", 0) || puts_(r, train ? "model" : "user", 0) ||
             puts_(r, "\n", 0) || (k == 0 && sys && (puts_(r, sys, 0) || puts_(r, "\n\n", 0))) ||
             put(r, s, n, train) || puts_(r, "<end_of_turn>", train) || puts_(r, "\n", 0);
    }
    strbuf_free(&content);
    return rc ? -1 : 0;
}

// Python's str.lstrip("\n") / rstrip("\n") on [*s, *s + *n).
static void lstrip_nl(const char **s, size_t *n) {
    while (*n && **s == '\n') (*s)++, (*n)--;
}
static void rstrip_nl(const char *s, size_t *n) {
    while (*n && s[*n - 1] == '\n') (*n)--;
}

// A Qwen3 answer as its template writes it: an answer holding "</think>" is split into the
// reasoning (between "<think>" and "</think>", newlines stripped) and the content after it.
// think_block: 1 always writes the block, -1 only with reasoning, 0 never (reasoning dropped).
static int qwen3_answer(chat_render *r, const chat_message *m, int think_block) {
    strbuf all;
    strbuf_init(&all);
    if (join_content(&all, m)) {
        strbuf_free(&all);
        return -1;
    }
    const char *content = all.data, *reason = "";
    size_t n_content = all.len, n_reason = 0;
    const char *close = strstr(all.data, "</think>");
    if (close) {
        // reasoning: before the first </think>, after the last <think> in it
        n_reason = (size_t)(close - all.data);
        reason = all.data;
        rstrip_nl(reason, &n_reason);
        for (const char *p = reason; (p = strstr(p, "<think>")) && p < reason + n_reason; p++) {
            n_reason -= (size_t)(p + 7 - reason);
            reason = p + 7;
        }
        lstrip_nl(&reason, &n_reason);
        // content: after the last </think>
        const char *last = close;
        for (const char *p = close; (p = strstr(p + 1, "</think>"));) last = p;
        content = last + 8;
        n_content = strlen(content);
        lstrip_nl(&content, &n_content);
    }
    int rc;
    if (think_block > 0 || (think_block < 0 && n_reason > 0)) {
        // "<think>\n" + reasoning.strip("\n") + "\n</think>\n\n" + content.lstrip("\n"): the
        // opening "<think>\n" is prompt (Qwen3's thinking-mode generation prompt ends with it),
        // an empty block is prompt too (the non-thinking prompt holds it), reasoning is trained.
        lstrip_nl(&reason, &n_reason);
        rstrip_nl(reason, &n_reason);
        lstrip_nl(&content, &n_content);
        int train_block = n_reason > 0;
        rc = puts_(r, "<think>\n", 0) || put(r, reason, n_reason, 1) ||
             puts_(r, "\n</think>\n\n", train_block) || put(r, content, n_content, 1);
    } else {
        rc = put(r, content, n_content, 1);
    }
    strbuf_free(&all);
    return rc || puts_(r, "<|im_end|>", 1) || puts_(r, "\n", 0) ? -1 : 0;
}

static int render_qwen3(const chat_template *t, const conversation *c, chat_render *r) {
    (void)t;
    // The template's last_query_index: the last user message (all of them when none).
    size_t last_query = c->n ? c->n - 1 : 0;
    for (size_t i = c->n; i-- > 0;)
        if (c->msgs[i].role == CHAT_ROLE_USER) {
            last_query = i;
            break;
        }
    for (size_t i = 0; i < c->n; i++) {
        const chat_message *m = &c->msgs[i];
        if (m->role != CHAT_ROLE_ASSISTANT) {
            if (puts_(r, "<|im_start|>", 0) || puts_(r, chat_role_name(m->role), 0) ||
                puts_(r, "\n", 0) || put_content(r, m, 0) || puts_(r, "<|im_end|>\n", 0))
                return -1;
            continue;
        }
        if (puts_(r, "<|im_start|>assistant\n", 0)) return -1;
        // After the last query the final answer always gets a block (empty without reasoning),
        // an earlier one only when it has reasoning (-1); before it, reasoning is dropped.
        int block = i > last_query ? (i + 1 == c->n ? 1 : -1) : 0;
        if (qwen3_answer(r, m, block)) return -1;
    }
    return 0;
}

static int render_phi3(const chat_template *t, const conversation *c, chat_render *r) {
    for (size_t i = 0; i < c->n; i++) {
        const chat_message *m = &c->msgs[i];
        if (m->role == CHAT_ROLE_SYSTEM && t->skip_empty_system && !*m->content) continue;
        int train = m->role == CHAT_ROLE_ASSISTANT;
        if (puts_(r, "<|", 0) || puts_(r, chat_role_name(m->role), 0) || puts_(r, "|>\n", 0) ||
            put_content(r, m, train) || puts_(r, "<|end|>", train) || puts_(r, "\n", 0))
            return -1;
    }
    // The template's closing EOS (no generation prompt) is prompt: Phi-3 ends a turn with <|end|>.
    return puts_(r, t->eos, 0);
}

int chat_template_render(const chat_template *t, const conversation *c, chat_render *r) {
    strbuf_clear(&r->text);
    r->n_segs = 0;
    switch (t->kind) {
    case CHAT_TEMPLATE_CHATML: return render_chatml(t, c, r);
    case CHAT_TEMPLATE_LLAMA2: return render_llama2(t, c, r);
    case CHAT_TEMPLATE_LLAMA3: return render_llama3(t, c, r);
    case CHAT_TEMPLATE_ZEPHYR: return render_zephyr(t, c, r);
    case CHAT_TEMPLATE_ALPACA: return render_alpaca(t, c, r);
    case CHAT_TEMPLATE_GEMMA: return render_gemma(t, c, r);
    case CHAT_TEMPLATE_QWEN3: return render_qwen3(t, c, r);
    case CHAT_TEMPLATE_PHI3: return render_phi3(t, c, r);
    }
    return err_set("unknown chat template");
}
