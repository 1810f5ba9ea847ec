// JSON records: JSONL (one value per line) or one JSON array of records, told apart by the
// first non-blank byte ('[' = array). Arrays are split into their elements by a streaming
// bracket scanner and each element is parsed on its own, so memory stays bounded by one
// record and one bad record is skipped without losing the rest.
//   jsonl     {"<text_field>": "..."}                          text_field default "text"
//   alpaca    {"instruction", "input"?, "<text_field>"}         text_field default "output"
//   sharegpt  {"<text_field>": [{"from", "value"}, ...]}        text_field default "conversations"
//   messages  {"<text_field>": [{"role", "content"}, ...]}      text_field default "messages"
//   preference  prompt + chosen + rejected in four layouts (ingest_preference.c)
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "data_prep/ingest.h"
#include "data_prep/line_reader.h"

typedef struct {
    ingest_ctx *ic;
    const char *path;
    input_format fmt;
    const char *field;
} json_input;

static const char *string_field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int role_from_sharegpt(const char *from, chat_role *role) {
    static const char *const user[] = {"human", "user"};
    static const char *const assistant[] = {"gpt", "assistant", "chatgpt", "bard", "bing", "model"};
    for (size_t i = 0; i < sizeof user / sizeof user[0]; i++)
        if (!strcasecmp(from, user[i])) return *role = CHAT_ROLE_USER, 0;
    for (size_t i = 0; i < sizeof assistant / sizeof assistant[0]; i++)
        if (!strcasecmp(from, assistant[i])) return *role = CHAT_ROLE_ASSISTANT, 0;
    if (!strcasecmp(from, "system")) return *role = CHAT_ROLE_SYSTEM, 0;
    return -1;
}

int role_from_openai(const char *name, chat_role *role) {
    if (!strcmp(name, "system") || !strcmp(name, "developer")) return *role = CHAT_ROLE_SYSTEM, 0;
    if (!strcmp(name, "user")) return *role = CHAT_ROLE_USER, 0;
    if (!strcmp(name, "assistant")) return *role = CHAT_ROLE_ASSISTANT, 0;
    return -1;
}

// Fills `d` from a parsed record. Returns 0 ok, 1 malformed (message in `why`), 2 empty,
// -1 out of memory.
static int record_to_doc(const json_input *in, const cJSON *rec, document *d, char *why, size_t n) {
    if (!cJSON_IsObject(rec)) return snprintf(why, n, "record is not a JSON object"), 1;
    if (in->fmt == INPUT_PREFERENCE) return preference_record(rec, d, why, n);
    if (in->fmt == INPUT_JSONL) {
        const char *t = string_field(rec, in->field);
        if (!t) return snprintf(why, n, "no string field '%s'", in->field), 1;
        if (!*t) return 2;
        d->text = (char *)t;
        d->len = strlen(t);
        return 0;
    }
    d->is_chat = 1;
    if (in->fmt == INPUT_ALPACA) {
        const char *ins = string_field(rec, "instruction");
        const char *inp = string_field(rec, "input");
        const char *out = string_field(rec, in->field);
        if (!ins) return snprintf(why, n, "no string field 'instruction'"), 1;
        if (!out) return snprintf(why, n, "no string field '%s'", in->field), 1;
        if (cJSON_GetObjectItemCaseSensitive(rec, "input") && !inp &&
            !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rec, "input")))
            return snprintf(why, n, "field 'input' is not a string"), 1;
        // "<noinput>" is the self-instruct convention for an empty input.
        if (inp && (!*inp || !strcmp(inp, "<noinput>"))) inp = NULL;
        if (!*out || !*ins) return 2;
        if (conversation_add(&d->conv, CHAT_ROLE_USER, ins, strlen(ins), inp, inp ? strlen(inp) : 0) ||
            conversation_add(&d->conv, CHAT_ROLE_ASSISTANT, out, strlen(out), NULL, 0))
            return -1;
        return 0;
    }
    const cJSON *turns = cJSON_GetObjectItemCaseSensitive(rec, in->field);
    if (!cJSON_IsArray(turns)) return snprintf(why, n, "no array field '%s'", in->field), 1;
    int sharegpt = in->fmt == INPUT_SHAREGPT;
    const char *role_key = sharegpt ? "from" : "role", *text_key = sharegpt ? "value" : "content";
    int i = 0, answers = 0;
    for (const cJSON *t = turns->child; t; t = t->next, i++) {
        const char *who = cJSON_IsObject(t) ? string_field(t, role_key) : NULL;
        const char *text = cJSON_IsObject(t) ? string_field(t, text_key) : NULL;
        if (!who || !text)
            return snprintf(why, n, "%s[%d] needs string '%s' and '%s'", in->field, i, role_key, text_key), 1;
        chat_role role;
        if ((sharegpt ? role_from_sharegpt : role_from_openai)(who, &role))
            return snprintf(why, n, "%s[%d]: unsupported role '%s'", in->field, i, who), 1;
        if (role == CHAT_ROLE_ASSISTANT && *text) answers++;
        if (conversation_add(&d->conv, role, text, strlen(text), NULL, 0)) return -1;
    }
    return answers ? 0 : 2;
}

static int handle_record(json_input *in, const char *text, size_t len, uint64_t line) {
    ingest_ctx *ic = in->ic;
    ic->n_records++;
    const char *end = NULL;
    cJSON *rec = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!rec) return ingest_malformed(ic, "%s:%llu: bad JSON", in->path, (unsigned long long)line);
    // Anything but blanks after the value is an error too (two records on one line, ...).
    for (const char *p = end; p && p < text + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            cJSON_Delete(rec);
            return ingest_malformed(ic, "%s:%llu: bad JSON: trailing characters", in->path,
                                    (unsigned long long)line);
        }
    document d = {0};
    char why[200] = "";
    int rc = record_to_doc(in, rec, &d, why, sizeof why);
    if (rc == 0) {
        snprintf(d.where, sizeof d.where, "%s:%llu", in->path, (unsigned long long)line);
        rc = ic->emit(ic->user, &d);
    } else if (rc == 1) {
        rc = ingest_malformed(ic, "%s:%llu: %s", in->path, (unsigned long long)line, why);
    } else if (rc == 2) {
        ic->n_empty++;
        rc = 0;
    } else {
        rc = err_set("%s: out of memory", in->path);
    }
    // d.text points into the parsed record: only the conversations are owned here.
    conversation_free(&d.conv);
    conversation_free(&d.chosen);
    conversation_free(&d.rejected);
    cJSON_Delete(rec);
    return rc;
}

// Incremental splitter of a top-level JSON array into element texts.
typedef struct {
    int started, done, depth, in_string, escape;
    strbuf elem;
    uint64_t elem_line;
} array_scanner;

static int scan_line(json_input *in, array_scanner *s, const char *line, size_t len, uint64_t lineno) {
    size_t i = 0;
    if (!s->started) {
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
        if (i == len) return 0;
        s->started = 1;
        i++;  // the '['
    }
    size_t seg = i;  // start of bytes of the current element on this line
    for (; i < len; i++) {
        char c = line[i];
        if (s->done) {
            if (c != ' ' && c != '\t' && c != '\r')
                return ingest_malformed(in->ic, "%s:%llu: bad JSON: data after the closing ']'",
                                        in->path, (unsigned long long)lineno);
            continue;
        }
        if (s->in_string) {
            if (s->escape) s->escape = 0;
            else if (c == '\\') s->escape = 1;
            else if (c == '"') s->in_string = 0;
            continue;
        }
        if (c == '"') s->in_string = 1;
        else if (c == '{' || c == '[') s->depth++;
        else if ((c == '}' || c == ']') && s->depth > 0) s->depth--;
        else if ((c == ',' || c == ']') && s->depth == 0) {
            if (strbuf_append(&s->elem, line + seg, i - seg)) return -1;
            seg = i + 1;
            size_t a = 0, n = s->elem.len;
            while (a < n && strchr(" \t\r\n", s->elem.data[a])) a++;
            int rc = 0;
            if (a < n) rc = handle_record(in, s->elem.data + a, n - a, s->elem_line);
            else if (c == ',') rc = ingest_malformed(in->ic, "%s:%llu: bad JSON: empty array element",
                                                     in->path, (unsigned long long)lineno);
            strbuf_clear(&s->elem);
            s->elem_line = 0;
            if (rc) return rc;
            if (c == ']') s->done = 1;
            continue;
        }
        if (!s->elem_line && c != ' ' && c != '\t' && c != '\r') s->elem_line = lineno;
    }
    if (!s->done && seg < len) {
        if (strbuf_append(&s->elem, line + seg, len - seg) || strbuf_putc(&s->elem, '\n'))
            return -1;
    }
    return 0;
}

static int first_byte(const char *path, int *c) {
    line_reader r;
    if (line_reader_open(&r, path)) return -1;
    const char *line;
    size_t len;
    int got;
    *c = 0;
    while (!*c && (got = line_reader_next(&r, &line, &len)) == 1) {
        size_t i = 0;
        if (r.line == 1 && len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) i = 3;
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) i++;
        if (i < len) *c = (unsigned char)line[i];
    }
    line_reader_close(&r);
    return got < 0 ? -1 : 0;
}

int ingest_json(ingest_ctx *ic, const char *path, input_format fmt) {
    json_input in = {ic, path, fmt, ic->text_field};
    if (!in.field || !*in.field)
        in.field = fmt == INPUT_JSONL ? "text" : fmt == INPUT_ALPACA ? "output"
                 : fmt == INPUT_SHAREGPT ? "conversations" : "messages";
    int first;
    if (first_byte(path, &first)) return -1;
    line_reader r;
    if (line_reader_open(&r, path)) return -1;
    array_scanner s = {0};
    const char *line;
    size_t len;
    int rc = 0, got;
    uint64_t last_bytes = 0;
    while ((got = line_reader_next(&r, &line, &len)) == 1) {
        if (r.line == 1 && len >= 3 && !memcmp(line, "\xEF\xBB\xBF", 3)) line += 3, len -= 3;
        if (first == '[') {
            rc = scan_line(&in, &s, line, len, r.line);
        } else {
            size_t i = 0;
            while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
            if (i < len) rc = handle_record(&in, line + i, len - i, r.line);
        }
        if (rc) break;
        ic->bytes_in += r.bytes - last_bytes;
        last_bytes = r.bytes;
    }
    if (!rc && got < 0) rc = -1;
    if (!rc && first == '[' && !s.done) {
        ic->n_records++;
        rc = ingest_malformed(ic, "%s:%llu: bad JSON: the array is not closed", path,
                              (unsigned long long)(s.elem_line ? s.elem_line : r.line));
    }
    strbuf_free(&s.elem);
    line_reader_close(&r);
    return rc;
}
