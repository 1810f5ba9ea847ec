#include "export/hf_tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

static int write_file(const char *dir, const char *name, const char *text) {
    char path[4096];
    if (path_join(path, sizeof path, dir, name)) return -1;
    return file_write_atomic(path, text, strlen(text));
}

// The token of a GGUF id key (tokenizer.ggml.padding_token_id...), or NULL when absent.
static const char *gguf_token(const gguf_file *f, const tokenizer *tok, const char *key,
                              int *rc) {
    int64_t id = -1;
    if (!gguf_find(f, key)) return NULL;
    if (gguf_get_int(f, key, &id)) {
        *rc = -1;
        return NULL;
    }
    return id >= 0 && id < tokenizer_vocab_size(tok) ? tokenizer_token_str(tok, (int32_t)id) : NULL;
}

static void add_token(cJSON *o, const char *key, const char *token) {
    if (token) cJSON_AddStringToObject(o, key, token);
}

// tokenizer_config.json and special_tokens_map.json; `tok_json` is the parsed tokenizer.json,
// whose added_tokens become added_tokens_decoder.
static int write_configs(const gguf_file *f, const tokenizer *tok, const cJSON *tok_json,
                         const char *out_dir, int model_max_length) {
    int rc = 0, add_eos = 0;
    const char *names[4] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    const char *tokens[4] = {
        tokenizer_bos_id(tok) >= 0 ? tokenizer_token_str(tok, tokenizer_bos_id(tok)) : NULL,
        tokenizer_eos_id(tok) >= 0 ? tokenizer_token_str(tok, tokenizer_eos_id(tok)) : NULL,
        gguf_token(f, tok, "tokenizer.ggml.padding_token_id", &rc),
        gguf_token(f, tok, "tokenizer.ggml.unknown_token_id", &rc)};
    if (gguf_find(f, "tokenizer.ggml.add_eos_token") &&
        gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &add_eos))
        rc = -1;
    if (rc) return -1;
    cJSON *cfg = cJSON_CreateObject(), *map = cJSON_CreateObject();
    cJSON_AddBoolToObject(cfg, "add_bos_token", tokenizer_adds_bos(tok));
    cJSON_AddBoolToObject(cfg, "add_eos_token", add_eos);
    cJSON *dec = cJSON_AddObjectToObject(cfg, "added_tokens_decoder");
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(tok_json, "added_tokens")) {
        char id[16];
        snprintf(id, sizeof id, "%d", cJSON_GetObjectItemCaseSensitive(it, "id")->valueint);
        cJSON *e = cJSON_Duplicate(it, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(e, "id");
        cJSON_AddItemToObject(dec, id, e);
    }
    for (int k = 0; k < 4; k++) {
        add_token(cfg, names[k], tokens[k]);
        add_token(map, names[k], tokens[k]);
    }
    if (tokenizer_chat_template(tok))
        cJSON_AddStringToObject(cfg, "chat_template", tokenizer_chat_template(tok));
    cJSON_AddBoolToObject(cfg, "clean_up_tokenization_spaces", 0);
    if (model_max_length > 0) cJSON_AddNumberToObject(cfg, "model_max_length", model_max_length);
    // The fast class reads tokenizer.json alone: no sentencepiece model or slow tokenizer.
    cJSON_AddStringToObject(cfg, "tokenizer_class", "PreTrainedTokenizerFast");
    char *cfg_text = cJSON_Print(cfg), *map_text = cJSON_Print(map);
    if (!cfg_text || !map_text) rc = err_set("%s: out of memory", out_dir);
    if (!rc) rc = write_file(out_dir, "tokenizer_config.json", cfg_text);
    if (!rc) rc = write_file(out_dir, "special_tokens_map.json", map_text);
    free(cfg_text);
    free(map_text);
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    return rc;
}

int hf_tokenizer_write(const char *gguf_path, const char *out_dir, int model_max_length) {
    tokenizer *tok = tokenizer_load(gguf_path);
    if (!tok) return -1;
    gguf_file f;
    if (gguf_open(&f, gguf_path)) {
        tokenizer_free(tok);
        return -1;
    }
    char *text = tokenizer_to_json(tok);
    cJSON *parsed = text ? cJSON_Parse(text) : NULL;
    int rc = 0;
    if (!text) rc = -1;
    else if (!parsed) rc = err_set("%s: out of memory", out_dir);
    if (!rc) rc = write_file(out_dir, "tokenizer.json", text);
    if (!rc) rc = write_configs(&f, tok, parsed, out_dir, model_max_length);
    cJSON_Delete(parsed);
    free(text);
    gguf_close(&f);
    tokenizer_free(tok);
    return rc;
}
