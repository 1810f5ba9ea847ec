#include "data_prep/document.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/str.h"
#include "common/strbuf.h"

int conversation_add(conversation *c, chat_role role, const char *content, size_t len,
                     const char *input, size_t input_len) {
    chat_message *msgs = vec_grow(c->msgs, &c->cap, c->n + 1, sizeof *msgs);
    if (!msgs) return err_set("conversation: out of memory");
    c->msgs = msgs;
    chat_message *m = &c->msgs[c->n];
    m->role = role;
    m->content = str_dup_n(content, len);
    m->input = input ? str_dup_n(input, input_len) : NULL;
    if (!m->content || (input && !m->input)) {
        free(m->content);
        free(m->input);
        return err_set("conversation: out of memory");
    }
    c->n++;
    return 0;
}

int conversation_append(conversation *dst, const conversation *src, size_t *bytes) {
    for (size_t i = 0; i < src->n; i++) {
        const chat_message *m = &src->msgs[i];
        size_t len = strlen(m->content), input_len = m->input ? strlen(m->input) : 0;
        if (conversation_add(dst, m->role, m->content, len, m->input, input_len)) return -1;
        if (bytes) *bytes += len + input_len;
    }
    return 0;
}

void conversation_free(conversation *c) {
    for (size_t i = 0; i < c->n; i++) {
        free(c->msgs[i].content);
        free(c->msgs[i].input);
    }
    free(c->msgs);
    memset(c, 0, sizeof *c);
}

const char *chat_role_name(chat_role r) {
    switch (r) {
    case CHAT_ROLE_SYSTEM: return "system";
    case CHAT_ROLE_USER: return "user";
    case CHAT_ROLE_ASSISTANT: return "assistant";
    }
    return "?";
}

void document_free(document *d) {
    free(d->text);
    conversation_free(&d->conv);
    conversation_free(&d->chosen);
    conversation_free(&d->rejected);
    d->is_pair = 0;
    d->text = NULL;
    d->len = 0;
}
