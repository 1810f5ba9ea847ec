#include "data_prep/shard_info.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "data_prep/shard_format.h"
#include "data_prep/shard_reader.h"

int shard_dir_matches(const char *path) {
    char m[4200];
    return path_is_dir(path) && !path_join(m, sizeof m, path, SHARD_MANIFEST) && path_exists(m);
}

// Reads the whole split through the reader (every frame decoded and checksummed).
static int verify_split(shard_set *s) {
    enum { CHUNK = 1 << 16 };
    uint32_t *buf = malloc(CHUNK * sizeof *buf);
    if (!buf) return err_set("out of memory");
    for (uint64_t at = 0; at < s->n_tokens; at += CHUNK) {
        size_t n = s->n_tokens - at < CHUNK ? (size_t)(s->n_tokens - at) : CHUNK;
        if (shard_set_read(s, at, n, buf)) {
            free(buf);
            return -1;
        }
    }
    free(buf);
    return 0;
}

int shard_dir_print(const char *path, int json) {
    static const char *const splits[2] = {"train", "val"};
    shard_set s[2];
    for (int i = 0; i < 2; i++) {
        if (shard_set_open(&s[i], path, splits[i])) {
            if (i) shard_set_close(&s[0]);
            return -1;
        }
    }
    int rc = verify_split(&s[0]) || verify_split(&s[1]);
    char mpath[4200], *text = NULL;
    cJSON *m = NULL;
    if (!rc && !path_join(mpath, sizeof mpath, path, SHARD_MANIFEST) && !file_read_all(mpath, &text, NULL))
        m = cJSON_Parse(text);
    free(text);
    if (!rc && !m) rc = err_set("%s: cannot read the manifest", path);
    if (!rc) {
        const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(m, "template");
        const cJSON *counts = cJSON_GetObjectItemCaseSensitive(m, "counts");
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(m, "tokenizer");
        const cJSON *tpath = cJSON_GetObjectItemCaseSensitive(tok, "path");
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "kind", "shards");
            cJSON_AddStringToObject(o, "tokenizer_fingerprint", s[0].tokenizer_fingerprint);
            cJSON_AddNumberToObject(o, "vocab_size", s[0].vocab_size);
            cJSON_AddStringToObject(o, "packing", s[0].pairs ? "pairs" : s[0].whole_packing ? "whole" : "stream");
            if (cJSON_IsString(tpl)) cJSON_AddStringToObject(o, "template", tpl->valuestring);
            for (int i = 0; i < 2; i++) {
                cJSON *x = cJSON_AddObjectToObject(o, splits[i]);
                cJSON_AddNumberToObject(x, "tokens", (double)s[i].n_tokens);
                cJSON_AddNumberToObject(x, "documents", (double)s[i].n_docs);
                if (s[i].pairs) cJSON_AddNumberToObject(x, "pairs", (double)shard_set_n_pairs(&s[i]));
                cJSON_AddNumberToObject(x, "trained_tokens", (double)s[i].n_trained);
                cJSON_AddNumberToObject(x, "shards", s[i].n_files);
                cJSON_AddStringToObject(x, "fingerprint", s[i].fingerprint);
            }
            cJSON_AddBoolToObject(o, "checksums_ok", 1);
            if (counts) cJSON_AddItemToObject(o, "counts", cJSON_Duplicate(counts, 1));
            char *out = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            if (!out) rc = err_set("out of memory");
            else printf("%s\n", out);
            free(out);
        } else {
            printf("shard directory %s\n", path);
            printf("  tokenizer       %s (fingerprint %.16s..., vocab %d)\n",
                   cJSON_IsString(tpath) ? tpath->valuestring : "?", s[0].tokenizer_fingerprint, s[0].vocab_size);
            int chat = s[0].whole_packing || s[0].pairs;
            printf("  packing         %s%s%s\n",
                   s[0].pairs ? "pairs (preference, chat template " : s[0].whole_packing ? "whole (chat template " : "stream",
                   chat && cJSON_IsString(tpl) ? tpl->valuestring : "", chat ? ")" : "");
            for (int i = 0; i < 2; i++) {
                char what[64];
                if (s[i].pairs)
                    snprintf(what, sizeof what, "%llu pairs", (unsigned long long)shard_set_n_pairs(&s[i]));
                else
                    snprintf(what, sizeof what, "%llu documents", (unsigned long long)s[i].n_docs);
                printf("  %-5s           %llu tokens (%llu trained), %s, %d shard%s\n", splits[i],
                       (unsigned long long)s[i].n_tokens, (unsigned long long)s[i].n_trained, what,
                       s[i].n_files, s[i].n_files == 1 ? "" : "s");
            }
            printf("  checksums       ok (every frame verified)\n");
        }
    }
    cJSON_Delete(m);
    shard_set_close(&s[0]);
    shard_set_close(&s[1]);
    return rc ? -1 : 0;
}
