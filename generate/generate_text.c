// The generation loop: prefill, sample, stop, and stream text as it becomes complete.
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/strbuf.h"
#include "generate/generate.h"

void generate_options_default(generate_options *o, const model *m, const tokenizer *tok) {
    memset(o, 0, sizeof *o);
    o->max_new = 256;
    o->temperature = 0.0f;
    o->top_p = 1.0f;
    o->seed = 42;
    o->add_special = 1;
    generate_options_stop_at_eos(o, m, tok);
}

int generate_options_stop_at_eos(generate_options *o, const model *m, const tokenizer *tok) {
    for (int i = 0; m && i < m->cfg.n_eos; i++)
        if (generate_options_add_stop(o, m->cfg.eos_token_ids[i])) return -1;
    return tok ? generate_options_add_stop(o, tokenizer_eos_id(tok)) : 0;
}

int generate_options_add_stop(generate_options *o, int32_t id) {
    if (id < 0) return 0;
    for (int i = 0; i < o->n_stop; i++)
        if (o->stop_ids[i] == id) return 0;
    if (o->n_stop == GENERATE_MAX_STOP)
        return err_set("generate: more than %d stop tokens", GENERATE_MAX_STOP);
    o->stop_ids[o->n_stop++] = id;
    return 0;
}

void generate_result_free(generate_result *r) {
    id_vec_free(&r->prompt_ids);
    id_vec_free(&r->ids);
    free(r->text);
    memset(r, 0, sizeof *r);
}

const char *generate_stop_name(generate_stop s) {
    switch (s) {
    case GENERATE_STOP_EOS: return "eos";
    case GENERATE_STOP_LENGTH: return "length";
    case GENERATE_STOP_CONTEXT: return "context";
    }
    return "?";
}

static int text_append(text_stream *s, const char *p, size_t n) {
    char *t = vec_grow(s->text, &s->cap, s->len + n + 1, 1);
    if (!t) return err_set("generate: out of memory for the text");
    s->text = t;
    memcpy(s->text + s->len, p, n);
    s->len += n;
    s->text[s->len] = '\0';
    if (s->on_piece && n) s->on_piece(p, n, s->user);
    return 0;
}

static int ends_incomplete(const char *t, size_t n) {
    return n >= 3 && !memcmp(t + n - 3, "\xEF\xBF\xBD", 3);
}

// Emits what ids[read, end) add to the text; with `flush`, even an incomplete character.
static int stream_emit(text_stream *s, int flush) {
    if (s->read == s->ids.len) return 0;
    char *before = NULL, *after = NULL;
    size_t nb = 0, na = 0;
    int rc = tokenizer_decode(s->tok, s->ids.data + s->prefix, s->read - s->prefix, 1, &before, &nb);
    if (!rc) rc = tokenizer_decode(s->tok, s->ids.data + s->prefix, s->ids.len - s->prefix, 1, &after, &na);
    if (!rc && na > nb && (flush || !ends_incomplete(after, na))) {
        rc = text_append(s, after + nb, na - nb);
        s->prefix = s->read;
        s->read = s->ids.len;
    }
    free(before);
    free(after);
    return rc;
}

// An id the model has but the tokenizer lacks (padded vocabularies) has no text.
static int has_text(const tokenizer *tok, int32_t id) {
    return id >= 0 && id < tokenizer_vocab_size(tok) && tokenizer_token_str(tok, id);
}

int text_stream_init(text_stream *s, const tokenizer *tok, const int32_t *context, size_t n,
                     generate_piece_fn on_piece, void *user) {
    memset(s, 0, sizeof *s);
    s->tok = tok;
    s->on_piece = on_piece;
    s->user = user;
    for (size_t i = n > TEXT_STREAM_CONTEXT ? n - TEXT_STREAM_CONTEXT : 0; i < n; i++)
        if (has_text(tok, context[i]) && id_vec_push(&s->ids, context[i])) {
            text_stream_free(s);
            return err_set("generate: out of memory");
        }
    s->read = s->ids.len;
    // An empty text is still a string.
    return text_append(s, "", 0);
}

int text_stream_push(text_stream *s, int32_t id) {
    if (!has_text(s->tok, id)) return 0;
    if (id_vec_push(&s->ids, id)) return err_set("generate: out of memory");
    return stream_emit(s, 0);
}

int text_stream_finish(text_stream *s) { return stream_emit(s, 1); }

void text_stream_free(text_stream *s) {
    id_vec_free(&s->ids);
    free(s->text);
    memset(s, 0, sizeof *s);
}

static int is_stop(const generate_options *o, int32_t id) {
    for (int i = 0; i < o->n_stop; i++)
        if (o->stop_ids[i] == id) return 1;
    return 0;
}

static int check_options(const generate_options *o) {
    if (o->max_new <= 0) return err_set("max_new: must be a positive number of tokens, got %d", o->max_new);
    if (!(o->temperature >= 0.0f && o->temperature < 1e30f))
        return err_set("temperature: must be a finite number >= 0, got %g", o->temperature);
    if (!(o->top_p > 0.0f && o->top_p <= 1.0f))
        return err_set("top_p: must be in (0, 1], got %g", o->top_p);
    return 0;
}

int generate_ids(const model *m, const lora_adapter *lora, const tokenizer *tok,
                 const int32_t *prompt, size_t n_prompt, const generate_options *o,
                 generate_piece_fn on_piece, void *user, generate_result *res) {
    memset(res, 0, sizeof *res);
    const model_config *c = &m->cfg;
    if (check_options(o)) return -1;
    if (n_prompt == 0) return err_set("prompt: no tokens (empty text and no BOS token)");
    if (n_prompt > (size_t)c->max_position_embeddings)
        return err_set("prompt: %zu tokens do not fit the model's context of %d positions",
                       n_prompt, c->max_position_embeddings);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= c->vocab_size)
            return err_set("prompt: token id %d is outside the model's vocabulary (%d)", prompt[i],
                           c->vocab_size);
    // The last new token is never fed back, so the prompt and max_new - 1 tokens need positions.
    int64_t want = (int64_t)n_prompt + o->max_new - 1;
    int n_ctx = want < c->max_position_embeddings ? (int)want : c->max_position_embeddings;

    decoder d;
    sampler smp;
    text_stream ts;
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    if (!logits) return err_set("generate: out of memory for the logits");
    if (decoder_init(&d, m, lora, n_ctx)) {
        free(logits);
        return -1;
    }
    // Sampling does not need the training passes' numbers to the last bit: the faster int8
    // products (docs/design.md section 6).
    d.int8_products = 1;
    if (text_stream_init(&ts, tok, prompt, n_prompt, on_piece, user)) {
        decoder_free(&d);
        free(logits);
        return -1;
    }
    int rc = sampler_init(&smp, c->vocab_size, o->temperature, o->top_p, o->seed);
    for (size_t i = 0; i < n_prompt && !rc; i++) rc = id_vec_push(&res->prompt_ids, prompt[i]);

    double t0 = clock_now_s();
    if (!rc) rc = decoder_forward(&d, prompt, (int)n_prompt, logits, 0);
    double t1 = clock_now_s();
    res->prefill_seconds = t1 - t0;
    res->stop = GENERATE_STOP_LENGTH;
    for (int k = 0; !rc; k++) {
        int32_t next = sampler_sample(&smp, logits);
        if (id_vec_push(&res->ids, next)) {
            rc = err_set("generate: out of memory");
            break;
        }
        if (is_stop(o, next)) {
            res->stop = GENERATE_STOP_EOS;
            break;
        }
        rc = text_stream_push(&ts, next);
        if (rc || k + 1 == o->max_new) break;
        if (d.cache.n_past == d.cache.n_ctx) {
            res->stop = GENERATE_STOP_CONTEXT;
            break;
        }
        rc = decoder_forward(&d, &next, 1, logits, 0);
    }
    if (!rc) rc = text_stream_finish(&ts);
    res->decode_seconds = clock_now_s() - t1;
    res->positions_computed = d.n_positions;
    res->text = ts.text;
    res->text_len = ts.len;
    ts.text = NULL;
    text_stream_free(&ts);
    sampler_free(&smp);
    decoder_free(&d);
    free(logits);
    if (rc) generate_result_free(res);
    return rc;
}

int generate_text(const model *m, const lora_adapter *lora, const tokenizer *tok,
                  const char *prompt_text, const generate_options *o, generate_piece_fn on_piece,
                  void *user, generate_result *res) {
    memset(res, 0, sizeof *res);
    id_vec ids = {0};
    if (tokenizer_encode(tok, prompt_text, strlen(prompt_text), o->add_special, &ids))
        return err_prefix("prompt");
    int rc = generate_ids(m, lora, tok, ids.data, ids.len, o, on_piece, user, res);
    id_vec_free(&ids);
    return rc;
}
