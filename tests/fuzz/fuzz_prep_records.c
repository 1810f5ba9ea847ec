// libFuzzer harness: the JSON records prep reads and the chat templates it renders them in.
// The first input byte b picks what the rest is:
//   b < 0xC0  a corpus file (written to a scratch file: ingest_file takes a path) in format
//             b % 4 (jsonl, alpaca, sharegpt, messages), read with strict = (b >> 2) & 1; every
//             conversation it yields is rendered in template (b >> 3) % 5 (chatml, llama2,
//             llama3, alpaca, zephyr) and the trainable segments are checked against the text
//   b >= 0xC0 the chat_template string of a tokenizer_config.json beside the tiny model's
//             tokenizer.json: the tokenizer is loaded, template "auto" recognises it and a
//             conversation with a system prompt and two exchanges is rendered
// The tokenizer (for BOS/EOS strings) is the tiny model's, written once at start.
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "data_prep/chat_template.h"
#include "data_prep/ingest.h"
#include "tests/fuzz/fuzz_common.h"
#include "tokenizer/tokenizer.h"

static const char *const TEMPLATES[] = {"chatml", "llama2", "llama3", "alpaca", "zephyr"};
static const input_format FORMATS[] = {INPUT_JSONL, INPUT_ALPACA, INPUT_SHAREGPT, INPUT_MESSAGES};

static char tiny_dir[4096];
static char template_dir[4096];  // the tiny model's tokenizer.json; each input's tokenizer_config.json
static tokenizer *tiny_tok;
static cJSON *tiny_tok_config;  // the tiny model's tokenizer_config.json

static void init(void) {
    char path[4096], *text;
    size_t len;
    fuzz_tiny_model(tiny_dir, sizeof tiny_dir, "tiny");
    if (!(tiny_tok = tokenizer_load(tiny_dir))) fuzz_fail("%s", err_msg());
    if (path_join(path, sizeof path, tiny_dir, "tokenizer_config.json") ||
        file_read_all(path, &text, &len))
        fuzz_fail("%s", err_msg());
    if (!(tiny_tok_config = cJSON_Parse(text))) fuzz_fail("tiny tokenizer_config.json");
    free(text);
    fuzz_path(template_dir, sizeof template_dir, "template");
    if (dir_create(template_dir) != 0 || path_join(path, sizeof path, tiny_dir, "tokenizer.json") ||
        file_read_all(path, &text, &len) || path_join(path, sizeof path, template_dir, "tokenizer.json"))
        fuzz_fail("%s", err_msg());
    fuzz_write_path(path, text, len);
    free(text);
}

static void render_checked(const chat_template *t, const conversation *c) {
    chat_render r = {0};
    if (chat_template_render(t, c, &r) != 0) {
        fuzz_expect_error("chat_template_render");
    } else {
        size_t end = 0;
        for (size_t i = 0; i < r.n_segs; i++) {
            if (r.segs[i].start != end || r.segs[i].len > r.text.len - r.segs[i].start)
                fuzz_fail("segment %zu [%zu, +%zu) does not continue at %zu within %zu bytes", i,
                          r.segs[i].start, r.segs[i].len, end, r.text.len);
            end = r.segs[i].start + r.segs[i].len;
        }
        if (end != r.text.len) fuzz_fail("segments cover %zu of %zu bytes", end, r.text.len);
    }
    chat_render_free(&r);
}

static int emit(void *user, const document *doc) {
    if (doc->is_chat) render_checked(user, &doc->conv);
    else if (strlen(doc->text) != doc->len)
        fuzz_fail("%s: text of %zu bytes has length %zu", doc->where, strlen(doc->text), doc->len);
    return 0;
}

static void fuzz_records(uint8_t b, const uint8_t *data, size_t size) {
    chat_template t;
    if (chat_template_init(&t, TEMPLATES[(b >> 3) % 5], tiny_tok) != 0) fuzz_fail("%s", err_msg());
    char path[4096];
    fuzz_write(path, sizeof path, "records.jsonl", data, size);
    ingest_ctx ic = {.emit = emit, .user = &t, .strict = (b >> 2) & 1};
    if (ingest_file(&ic, path, FORMATS[b % 4]) != 0) fuzz_expect_error("ingest_file");
    chat_template_free(&t);
}

static void fuzz_template(const uint8_t *data, size_t size) {
    char path[4096];
    char *tpl = fuzz_cstr(data, size);
    cJSON_ReplaceItemInObjectCaseSensitive(tiny_tok_config, "chat_template", cJSON_CreateString(tpl));
    free(tpl);
    char *json = cJSON_PrintUnformatted(tiny_tok_config);
    if (!json) fuzz_fail("out of memory");
    if (path_join(path, sizeof path, template_dir, "tokenizer_config.json")) fuzz_fail("path");
    fuzz_write_path(path, json, strlen(json));
    free(json);
    tokenizer *tok = tokenizer_load(template_dir);
    if (!tok) fuzz_fail("tokenizer with a fuzzed chat_template: %s", err_msg());
    chat_template t;
    if (chat_template_init(&t, "auto", tok) != 0) {
        fuzz_expect_error("chat_template_init");
    } else {
        conversation c = {0};
        static const char *const TURNS[] = {"You are a careful clinician.", "What is HbA1c?",
                                            "Glycated haemoglobin.", "Target?", "Below 7%."};
        for (int i = 0; i < 5; i++)
            if (conversation_add(&c, i == 0 ? CHAT_ROLE_SYSTEM : i % 2 ? CHAT_ROLE_USER : CHAT_ROLE_ASSISTANT,
                                 TURNS[i], strlen(TURNS[i]), NULL, 0) != 0)
                fuzz_fail("%s", err_msg());
        render_checked(&t, &c);
        conversation_free(&c);
    }
    chat_template_free(&t);
    tokenizer_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    if (!tiny_tok) init();
    err_clear();
    if (data[0] >= 0xC0)
        fuzz_template(data + 1, size - 1);
    else
        fuzz_records(data[0], data + 1, size - 1);
    return 0;
}
