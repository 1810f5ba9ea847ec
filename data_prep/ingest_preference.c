// Preference pairs (prompt, chosen response, rejected response) from JSON records. The layout
// is recognised per record by its keys, in this order:
//   MedicalGPT     {system?, history?: [[user, assistant], ...], question,
//                   response_chosen, response_rejected}                       (all strings)
//   ShareGPT       {conversations: [{from, value}], chosen, rejected}      (LLaMA-Factory)
//   OpenAI         {messages: [{role, content}], chosen, rejected}
//   TRL            {prompt, chosen, rejected}
// A response (chosen/rejected) is a string (one assistant message), one message object
// ({role, content} or {from, value}) or a list of them ending with an assistant message; a
// TRL prompt is a string (one user message) or a list of messages.
#include <stdio.h>
#include <string.h>

#include "data_prep/ingest.h"

static const char *str_item(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int add(conversation *c, chat_role role, const char *text) {
    return conversation_add(c, role, text, strlen(text), NULL, 0);
}

// One message object, {role, content} or {from, value}. 0 ok, 1 malformed, -1 no memory.
static int add_message(conversation *c, const cJSON *m, const char *what, char *why, size_t n) {
    const char *role_s = str_item(m, "role"), *text = str_item(m, "content");
    int sharegpt = 0;
    if (!role_s && !text) {
        role_s = str_item(m, "from");
        text = str_item(m, "value");
        sharegpt = 1;
    }
    if (!cJSON_IsObject(m) || !role_s || !text)
        return snprintf(why, n, "%s: a message needs string 'role' and 'content' (or 'from' and 'value')", what), 1;
    chat_role role;
    if ((sharegpt ? role_from_sharegpt : role_from_openai)(role_s, &role))
        return snprintf(why, n, "%s: unsupported role '%s'", what, role_s), 1;
    return add(c, role, text) ? -1 : 0;
}

// A list of messages, one message, or a string standing for one message of `string_role`.
// 0 ok, 1 malformed, -1 no memory.
static int add_messages(conversation *c, const cJSON *v, int string_role, const char *what, char *why,
                        size_t n) {
    if (cJSON_IsString(v)) return add(c, (chat_role)string_role, v->valuestring) ? -1 : 0;
    if (cJSON_IsObject(v)) return add_message(c, v, what, why, n);
    if (!cJSON_IsArray(v))
        return snprintf(why, n, "'%s' must be a string, a message or a list of messages", what), 1;
    for (const cJSON *m = v->child; m; m = m->next) {
        int rc = add_message(c, m, what, why, n);
        if (rc) return rc;
    }
    return 0;
}

static int add_response(conversation *c, const cJSON *rec, const char *key, char *why, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!v) return snprintf(why, n, "no field '%s'", key), 1;
    int rc = add_messages(c, v, CHAT_ROLE_ASSISTANT, key, why, n);
    if (rc) return rc;
    if (c->n == 0 || c->msgs[c->n - 1].role != CHAT_ROLE_ASSISTANT)
        return snprintf(why, n, "'%s' does not end with an assistant message", key), 1;
    return 0;
}

static int medicalgpt_prompt(conversation *c, const cJSON *rec, char *why, size_t n) {
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(rec, "system");
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(rec, "history");
    const char *q = str_item(rec, "question");
    if (!q) return snprintf(why, n, "field 'question' is not a string"), 1;
    if (sys && !cJSON_IsNull(sys) && !cJSON_IsString(sys))
        return snprintf(why, n, "field 'system' is not a string"), 1;
    if (cJSON_IsString(sys) && *sys->valuestring && add(c, CHAT_ROLE_SYSTEM, sys->valuestring)) return -1;
    if (hist && !cJSON_IsNull(hist) && !cJSON_IsArray(hist))
        return snprintf(why, n, "field 'history' is not a list of [user, assistant] pairs"), 1;
    int i = 0;
    for (const cJSON *h = hist ? hist->child : NULL; h; h = h->next, i++) {
        const cJSON *u = cJSON_GetArrayItem(h, 0), *a = cJSON_GetArrayItem(h, 1);
        if (!cJSON_IsArray(h) || cJSON_GetArraySize(h) != 2 || !cJSON_IsString(u) || !cJSON_IsString(a))
            return snprintf(why, n, "history[%d] is not a [user, assistant] pair of strings", i), 1;
        if (add(c, CHAT_ROLE_USER, u->valuestring) || add(c, CHAT_ROLE_ASSISTANT, a->valuestring)) return -1;
    }
    return add(c, CHAT_ROLE_USER, q) ? -1 : 0;
}

static int has_answer(const conversation *c) {
    const chat_message *m = &c->msgs[c->n - 1];
    return m->content[strspn(m->content, " \t\r\n")] != 0;
}

int preference_record(const cJSON *rec, document *d, char *why, size_t n) {
    d->is_chat = d->is_pair = 1;
    int rc;
    const char *chosen = "chosen", *rejected = "rejected";
    if (cJSON_GetObjectItemCaseSensitive(rec, "question")) {
        rc = medicalgpt_prompt(&d->conv, rec, why, n);
        chosen = "response_chosen";
        rejected = "response_rejected";
    } else if (cJSON_GetObjectItemCaseSensitive(rec, "conversations")) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "conversations");
        rc = cJSON_IsArray(v) ? add_messages(&d->conv, v, CHAT_ROLE_USER, "conversations", why, n)
                              : (snprintf(why, n, "field 'conversations' is not a list of messages"), 1);
    } else if (cJSON_GetObjectItemCaseSensitive(rec, "messages")) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "messages");
        rc = cJSON_IsArray(v) ? add_messages(&d->conv, v, CHAT_ROLE_USER, "messages", why, n)
                              : (snprintf(why, n, "field 'messages' is not a list of messages"), 1);
    } else if (cJSON_GetObjectItemCaseSensitive(rec, "prompt")) {
        rc = add_messages(&d->conv, cJSON_GetObjectItemCaseSensitive(rec, "prompt"), CHAT_ROLE_USER,
                          "prompt", why, n);
    } else {
        return snprintf(why, n, "not a preference record: needs prompt, question, conversations or "
                                "messages, with chosen and rejected responses"), 1;
    }
    if (rc) return rc;
    if (d->conv.n == 0) return snprintf(why, n, "the prompt has no messages"), 1;
    if (d->conv.msgs[d->conv.n - 1].role == CHAT_ROLE_ASSISTANT)
        return snprintf(why, n, "the prompt ends with an assistant message"), 1;
    if ((rc = add_response(&d->chosen, rec, chosen, why, n)) ||
        (rc = add_response(&d->rejected, rec, rejected, why, n)))
        return rc;
    return has_answer(&d->chosen) && has_answer(&d->rejected) ? 0 : 2;
}
