// Preference pairs in the prep pipeline (docs/prep.md, "Preference pairs"): a pair is
// rendered as two conversations, prompt + chosen and prompt + rejected, and tokenized as TRL's
// DPOTrainer does (trl 1.16, DPOTrainer._prepare_dataset): the prompt alone with the
// generation prompt, and each whole conversation; the prompt is the longest token prefix the
// three share, and each response is the rest of its conversation, every token trained.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data_prep/prep_internal.h"

void pair_item_free(pair_item *p) {
    for (int k = 0; k < 2; k++) {
        strbuf_free(&p->text[k]);
        id_vec_free(&p->ids[k]);
    }
    free(p);
}

int pair_render(const chat_template *t, const document *d, pair_item *p, char *why, size_t n) {
    chat_render prompt = {0};
    if (chat_template_render(t, &d->conv, &prompt)) {
        snprintf(why, n, "%s", err_msg());
        chat_render_free(&prompt);
        return 1;
    }
    size_t prompt_len = prompt.text.len;
    chat_render_free(&prompt);
    const conversation *resp[2] = {&d->chosen, &d->rejected};
    for (int k = 0; k < 2; k++) {
        conversation full = {0};
        chat_render r = {0};
        if (conversation_append(&full, &d->conv, NULL) || conversation_append(&full, resp[k], NULL)) {
            conversation_free(&full);
            snprintf(why, n, "out of memory");
            return -1;
        }
        int rc = chat_template_render(t, &full, &r);
        conversation_free(&full);
        if (rc) {
            snprintf(why, n, "%s: %s", k ? "rejected" : "chosen", err_msg());
            chat_render_free(&r);
            return 1;
        }
        // The generation prompt ends where the first answer of the response starts: the
        // prompt's own rendering is a prefix of the whole one, the answer the first
        // trainable segment after it.
        size_t s = 0;
        while (s < r.n_segs && (!r.segs[s].trainable || r.segs[s].start < prompt_len)) s++;
        if (s == r.n_segs) {
            snprintf(why, n, "%s: the template renders no answer after the prompt", k ? "rejected" : "chosen");
            chat_render_free(&r);
            return 1;
        }
        p->prompt_bytes[k] = r.segs[s].start;
        p->text[k] = r.text;
        free(r.segs);
    }
    if (p->prompt_bytes[0] != p->prompt_bytes[1] ||
        memcmp(p->text[0].data, p->text[1].data, p->prompt_bytes[0])) {
        snprintf(why, n, "chosen and rejected render different prompts");
        return 1;
    }
    return 0;
}

static size_t common_prefix(const id_vec *a, const id_vec *b) {
    size_t k = 0;
    while (k < a->len && k < b->len && a->data[k] == b->data[k]) k++;
    return k;
}

int pair_tokenize(const tokenizer *tok, pair_item *p, char *why, size_t n) {
    id_vec prompt = {0};
    if (tokenizer_encode(tok, p->text[0].data, p->prompt_bytes[0], 0, &prompt) ||
        tokenizer_encode(tok, p->text[0].data, p->text[0].len, 0, &p->ids[0]) ||
        tokenizer_encode(tok, p->text[1].data, p->text[1].len, 0, &p->ids[1])) {
        id_vec_free(&prompt);
        return -1;
    }
    // A token merging across the prompt's end belongs to the response, as in TRL.
    size_t a = common_prefix(&prompt, &p->ids[0]), b = common_prefix(&prompt, &p->ids[1]);
    p->prompt_len = a < b ? a : b;
    id_vec_free(&prompt);
    if (p->prompt_len == 0 || p->prompt_len == p->ids[0].len || p->prompt_len == p->ids[1].len) {
        snprintf(why, n, "the prompt or a response tokenizes to nothing");
        return 1;
    }
    return 0;
}
