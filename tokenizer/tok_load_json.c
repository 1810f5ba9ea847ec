// Loads a Hugging Face tokenizer.json (plus tokenizer_config.json and special_tokens_map.json
// from the same directory) into the tokenizer structure. Unsupported components are errors
// naming the JSON path and type, never silently ignored.
#include <cjson/cJSON.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/json_number.h"
#include "common/strbuf.h"
#include "tokenizer/tok_internal.h"

static const char *str_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int bool_of(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static char *dup_str(const char *s, size_t *len) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    if (len) *len = n;
    return p;
}

// {"String": "..."} or {"Regex": "..."}: exactly one of *literal / *re is set.
static int parse_pattern(const tokenizer *t, const cJSON *pat, const char *where, char **literal,
                         size_t *literal_len, tok_regex *re) {
    const char *s = str_of(pat, "String"), *r = str_of(pat, "Regex");
    if (s) {
        *literal = dup_str(s, literal_len);
        return *literal ? 0 : err_set("%s: out of memory", t->source);
    }
    if (r) {
        char what[256];
        snprintf(what, sizeof what, "%s: %s", t->source, where);
        return tok_regex_compile(re, r, strlen(r), what);
    }
    return err_set("%s: %s.pattern must be {\"String\": ...} or {\"Regex\": ...}", t->source, where);
}

// ---- normalizer ---------------------------------------------------------------------------

static int parse_normalizer(tokenizer *t, const cJSON *o) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = str_of(o, "type");
    if (!type) return err_set("%s: normalizer without a \"type\"", t->source);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "normalizers"), *it;
        cJSON_ArrayForEach(it, list) if (parse_normalizer(t, it)) return -1;
        return 0;
    }
    if (t->n_norm == TOK_MAX_STAGES) return err_set("%s: too many normalizers", t->source);
    tok_normalizer *n = &t->norm[t->n_norm];
    memset(n, 0, sizeof *n);
    static const struct {
        const char *name;
        tok_norm_type type;
    } simple[] = {{"NFC", TOK_NORM_NFC},           {"NFD", TOK_NORM_NFD},
                  {"NFKC", TOK_NORM_NFKC},         {"NFKD", TOK_NORM_NFKD},
                  {"Lowercase", TOK_NORM_LOWERCASE}, {"StripAccents", TOK_NORM_STRIP_ACCENTS}};
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (!strcmp(type, simple[i].name)) {
            n->type = simple[i].type;
            t->n_norm++;
            return 0;
        }
    if (!strcmp(type, "Strip")) {
        n->type = TOK_NORM_STRIP;
        n->left = bool_of(o, "strip_left", 1);
        n->right = bool_of(o, "strip_right", 1);
    } else if (!strcmp(type, "Prepend")) {
        const char *p = str_of(o, "prepend");
        if (!p) return err_set("%s: normalizer Prepend without \"prepend\"", t->source);
        n->type = TOK_NORM_PREPEND;
        if (!(n->content = dup_str(p, &n->content_len))) return err_set("%s: out of memory", t->source);
    } else if (!strcmp(type, "Replace")) {
        const char *c = str_of(o, "content");
        if (!c) return err_set("%s: normalizer Replace without \"content\"", t->source);
        n->type = TOK_NORM_REPLACE;
        if (!(n->content = dup_str(c, &n->content_len))) return err_set("%s: out of memory", t->source);
        t->n_norm++;  // counted now so tokenizer_free releases content if the pattern fails
        return parse_pattern(t, cJSON_GetObjectItemCaseSensitive(o, "pattern"), "normalizer Replace",
                             &n->pattern, &n->pattern_len, &n->re);
    } else
        return err_set("%s: normalizer type '%s' is not supported", t->source, type);
    t->n_norm++;
    return 0;
}

// ---- pre-tokenizer ------------------------------------------------------------------------

static int parse_behavior(const tokenizer *t, const char *b, tok_split_behavior *out) {
    static const struct {
        const char *name;
        tok_split_behavior b;
    } names[] = {{"Removed", TOK_SPLIT_REMOVED},
                 {"Isolated", TOK_SPLIT_ISOLATED},
                 {"MergedWithPrevious", TOK_SPLIT_MERGED_WITH_PREVIOUS},
                 {"MergedWithNext", TOK_SPLIT_MERGED_WITH_NEXT},
                 {"Contiguous", TOK_SPLIT_CONTIGUOUS}};
    for (size_t i = 0; b && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(b, names[i].name)) {
            *out = names[i].b;
            return 0;
        }
    return err_set("%s: pre_tokenizer Split behavior '%s' is not supported", t->source, b ? b : "(none)");
}

static int parse_prepend_scheme(const tokenizer *t, const cJSON *o, tok_prepend_scheme *out) {
    const char *s = str_of(o, "prepend_scheme");
    if (!s) {  // files written before prepend_scheme existed use add_prefix_space
        *out = bool_of(o, "add_prefix_space", 1) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
        return 0;
    }
    if (!strcmp(s, "always")) *out = TOK_PREPEND_ALWAYS;
    else if (!strcmp(s, "first")) *out = TOK_PREPEND_FIRST;
    else if (!strcmp(s, "never")) *out = TOK_PREPEND_NEVER;
    else return err_set("%s: Metaspace prepend_scheme '%s' is not supported", t->source, s);
    return 0;
}

static int parse_replacement(const tokenizer *t, const cJSON *o, char rep[8], int *len) {
    const char *r = str_of(o, "replacement");
    if (!r) r = "\xE2\x96\x81";  // U+2581, HF's default
    size_t n = strlen(r);
    if (!n || n > 4) return err_set("%s: Metaspace replacement must be one character", t->source);
    memcpy(rep, r, n);
    *len = (int)n;
    return 0;
}

static int parse_pretok(tokenizer *t, const cJSON *o) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = str_of(o, "type");
    if (!type) return err_set("%s: pre_tokenizer without a \"type\"", t->source);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers"), *it;
        cJSON_ArrayForEach(it, list) if (parse_pretok(t, it)) return -1;
        return 0;
    }
    if (t->bpe.byte_level)
        return err_set("%s: pre_tokenizer '%s' after ByteLevel is not supported", t->source, type);
    if (t->n_pre == TOK_MAX_STAGES) return err_set("%s: too many pre_tokenizers", t->source);
    tok_pretok *p = &t->pre[t->n_pre];
    memset(p, 0, sizeof *p);
    if (!strcmp(type, "ByteLevel")) {
        p->type = TOK_PRE_BYTE_LEVEL;
        p->add_prefix_space = bool_of(o, "add_prefix_space", 1);
        p->use_regex = bool_of(o, "use_regex", 1);
        t->bpe.byte_level = 1;
        t->n_pre++;
        if (p->use_regex)
            return tok_regex_compile(&p->re, TOK_GPT2_PATTERN, strlen(TOK_GPT2_PATTERN), "ByteLevel");
        return 0;
    }
    if (!strcmp(type, "Split")) {
        p->type = TOK_PRE_SPLIT;
        p->invert = bool_of(o, "invert", 0);
        if (parse_behavior(t, str_of(o, "behavior"), &p->behavior)) return -1;
        t->n_pre++;
        return parse_pattern(t, cJSON_GetObjectItemCaseSensitive(o, "pattern"), "pre_tokenizer Split",
                             &p->literal, &p->literal_len, &p->re);
    }
    if (!strcmp(type, "Metaspace")) {
        p->type = TOK_PRE_METASPACE;
        p->split = bool_of(o, "split", 1);
        if (parse_replacement(t, o, p->replacement, &p->replacement_len) ||
            parse_prepend_scheme(t, o, &p->prepend_scheme))
            return -1;
    } else if (!strcmp(type, "Digits")) {
        p->type = TOK_PRE_DIGITS;
        p->individual_digits = bool_of(o, "individual_digits", 0);
    } else if (!strcmp(type, "WhitespaceSplit")) {
        p->type = TOK_PRE_WHITESPACE_SPLIT;
    } else
        return err_set("%s: pre_tokenizer type '%s' is not supported", t->source, type);
    t->n_pre++;
    return 0;
}

// ---- model --------------------------------------------------------------------------------

static int parse_model(tokenizer *t, const cJSON *m, int32_t max_added_id) {
    if (!cJSON_IsObject(m)) return err_set("%s: no \"model\" object", t->source);
    const char *type = str_of(m, "type");
    if (type && strcmp(type, "BPE"))
        return err_set("%s: model type '%s' is not supported (only BPE)", t->source, type);
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (cJSON_IsNumber(drop) && drop->valuedouble != 0.0)
        return err_set("%s: model.dropout %g is not supported (encoding must be deterministic)",
                       t->source, drop->valuedouble);
    const char *csp = str_of(m, "continuing_subword_prefix"), *eow = str_of(m, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow))
        return err_set("%s: model.%s is not supported", t->source,
                       csp && *csp ? "continuing_subword_prefix" : "end_of_word_suffix");
    t->bpe.fuse_unk = bool_of(m, "fuse_unk", 0);
    t->bpe.byte_fallback = bool_of(m, "byte_fallback", 0);
    t->bpe.ignore_merges = bool_of(m, "ignore_merges", 0);

    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab"), *it;
    if (!cJSON_IsObject(vocab)) return err_set("%s: model.vocab is not an object", t->source);
    int32_t max_id = max_added_id;
    size_t n_vocab = 0;
    cJSON_ArrayForEach(it, vocab) {
        long long id;
        if (!json_whole(it, 0, TOK_MAX_ID, &id))
            return err_set("%s: model.vocab[\"%s\"] is not a valid id (an integer in [0, %d])",
                           t->source, it->string, TOK_MAX_ID);
        if (id > max_id) max_id = (int32_t)id;
        n_vocab++;
    }
    tok_str_map_free(&t->bpe.vocab);
    if (tok_str_map_init(&t->bpe.vocab, n_vocab) || tok_set_ids(t, max_id + 1)) return -1;
    cJSON_ArrayForEach(it, vocab) {
        if (tok_model_token(t, it->valueint, it->string, strlen(it->string))) return -1;
    }

    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    int rank = 0;
    cJSON_ArrayForEach(it, merges) {
        rank++;
        if (cJSON_IsString(it)) {
            // "a b": HF requires exactly one space (tokens containing spaces need the pair form).
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return err_set("%s: model.merges[%d] '%s' is not two tokens separated by one space",
                               t->source, rank - 1, s);
            if (tok_model_merge(t, s, (size_t)(sp - s), sp + 1, strlen(sp + 1))) return -1;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) && cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            const char *a = cJSON_GetArrayItem(it, 0)->valuestring, *b = cJSON_GetArrayItem(it, 1)->valuestring;
            if (tok_model_merge(t, a, strlen(a), b, strlen(b))) return -1;
        } else
            return err_set("%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", t->source, rank - 1);
    }
    const char *unk = str_of(m, "unk_token");
    if (unk) {
        t->bpe.unk_id = tok_str_map_get(&t->bpe.vocab, unk, (uint32_t)strlen(unk));
        if (t->bpe.unk_id < 0)
            return err_set("%s: model.unk_token '%s' is not in the vocabulary", t->source, unk);
    }
    return 0;
}

// ---- added tokens, post-processor, decoder ------------------------------------------------

static int parse_added(tokenizer *t, const cJSON *list) {
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
        const char *content = str_of(it, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!content || !cJSON_IsNumber(id) || id->valueint < 0)
            return err_set("%s: added_tokens entry without content or id", t->source);
        tok_added a = {(char *)content, strlen(content), id->valueint, bool_of(it, "special", 0),
                       bool_of(it, "lstrip", 0), bool_of(it, "rstrip", 0),
                       bool_of(it, "normalized", 1), bool_of(it, "single_word", 0)};
        if (tok_add_added(t, &a)) return -1;
    }
    return 0;
}

// The post-processor's few ids are set once at load, so no capacity is kept: *n is a lower
// bound of the allocation and every call grows it.
static int append_ids(const tokenizer *t, int32_t **v, size_t *n, const int32_t *ids, size_t k) {
    if (!k) return 0;
    size_t cap = *n;
    int32_t *p = vec_grow(*v, &cap, *n + k, sizeof *p);
    if (!p) return err_set("%s: out of memory", t->source);
    memcpy(p + *n, ids, k * sizeof *p);
    *v = p;
    *n += k;
    return 0;
}

static int prepend_ids(const tokenizer *t, int32_t **v, size_t *n, const int32_t *ids, size_t k) {
    if (!k) return 0;
    size_t cap = *n;
    int32_t *p = vec_grow(*v, &cap, *n + k, sizeof *p);
    if (!p) return err_set("%s: out of memory", t->source);
    memmove(p + k, p, *n * sizeof *p);
    memcpy(p, ids, k * sizeof *p);
    *v = p;
    *n += k;
    return 0;
}

static int parse_post(tokenizer *t, const cJSON *o) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = str_of(o, "type");
    if (!type) return err_set("%s: post_processor without a \"type\"", t->source);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "processors"), *it;
        cJSON_ArrayForEach(it, list) if (parse_post(t, it)) return -1;
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) return 0;  // only adjusts offsets
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(o, "cls"),
                    *sep = cJSON_GetObjectItemCaseSensitive(o, "sep");
        const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(ci) || !cJSON_IsNumber(si))
            return err_set("%s: post_processor %s needs cls and sep [token, id]", t->source, type);
        int32_t c = ci->valueint, s = si->valueint;
        return prepend_ids(t, &t->prefix, &t->n_prefix, &c, 1) ||
               append_ids(t, &t->suffix, &t->n_suffix, &s, 1);
    }
    if (strcmp(type, "TemplateProcessing"))
        return err_set("%s: post_processor type '%s' is not supported", t->source, type);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single"), *it;
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
    int32_t *pre = NULL, *suf = NULL;
    size_t npre = 0, nsuf = 0;
    int seen_a = 0, rc = 0;
    cJSON_ArrayForEach(it, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
            if (seen_a++) rc = err_set("%s: post_processor single template has two sequences", t->source);
        } else if (sp) {
            const char *name = str_of(sp, "id");
            const cJSON *st = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids"), *x;
            if (!cJSON_IsArray(ids))
                rc = err_set("%s: post_processor special token '%s' has no ids", t->source, name ? name : "?");
            cJSON_ArrayForEach(x, ids) {
                int32_t id = x->valueint;
                if (!rc) rc = seen_a ? append_ids(t, &suf, &nsuf, &id, 1) : append_ids(t, &pre, &npre, &id, 1);
            }
        } else
            rc = err_set("%s: post_processor single template entry is neither Sequence nor SpecialToken", t->source);
        if (rc) break;
    }
    if (!rc) rc = prepend_ids(t, &t->prefix, &t->n_prefix, pre, npre) ||
                  append_ids(t, &t->suffix, &t->n_suffix, suf, nsuf);
    free(pre);
    free(suf);
    return rc;
}

static int parse_decoder(tokenizer *t, const cJSON *o) {
    if (!o || cJSON_IsNull(o)) return 0;
    const char *type = str_of(o, "type");
    if (!type) return err_set("%s: decoder without a \"type\"", t->source);
    t->has_decoder = 1;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "decoders"), *it;
        cJSON_ArrayForEach(it, list) if (parse_decoder(t, it)) return -1;
        return 0;
    }
    if (t->n_dec == TOK_MAX_STAGES) return err_set("%s: too many decoders", t->source);
    tok_decoder *d = &t->dec[t->n_dec];
    memset(d, 0, sizeof *d);
    if (!strcmp(type, "ByteLevel")) d->type = TOK_DEC_BYTE_LEVEL;
    else if (!strcmp(type, "ByteFallback")) d->type = TOK_DEC_BYTE_FALLBACK;
    else if (!strcmp(type, "Fuse")) d->type = TOK_DEC_FUSE;
    else if (!strcmp(type, "Metaspace")) {
        tok_prepend_scheme ps;
        d->type = TOK_DEC_METASPACE;
        if (parse_replacement(t, o, d->replacement, &d->replacement_len) || parse_prepend_scheme(t, o, &ps))
            return -1;
        d->prepend = ps != TOK_PREPEND_NEVER;
    } else if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
        const char *s = str_of(pat, "String"), *c = str_of(o, "content");
        if (!s || !c) return err_set("%s: decoder Replace needs a String pattern and content", t->source);
        d->type = TOK_DEC_REPLACE;
        t->n_dec++;
        d->pattern = dup_str(s, &d->pattern_len);
        d->content = dup_str(c, &d->content_len);
        return d->pattern && d->content ? 0 : err_set("%s: out of memory", t->source);
    } else if (!strcmp(type, "Strip")) {
        const char *c = str_of(o, "content");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "start"), *sp = cJSON_GetObjectItemCaseSensitive(o, "stop");
        d->type = TOK_DEC_STRIP;
        d->start = cJSON_IsNumber(st) ? st->valueint : 0;
        d->stop = cJSON_IsNumber(sp) ? sp->valueint : 0;
        t->n_dec++;
        d->content = dup_str(c ? c : " ", &d->content_len);
        return d->content ? 0 : err_set("%s: out of memory", t->source);
    } else
        return err_set("%s: decoder type '%s' is not supported", t->source, type);
    t->n_dec++;
    return 0;
}

// ---- tokenizer_config.json / special_tokens_map.json --------------------------------------

static cJSON *read_json(const char *path, int *rc) {
    *rc = 0;
    if (!path_exists(path)) return NULL;
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len)) {
        *rc = -1;
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) *rc = err_set("%s: invalid JSON", path);
    return j;
}

// "bos_token": "<s>" or {"content": "<s>", ...}.
static int32_t config_token(const tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : str_of(v, "content");
    return s ? tokenizer_token_id(t, s) : -1;
}

static int load_configs(tokenizer *t, const char *dir) {
    char path[4096];
    const char *names[2] = {"special_tokens_map.json", "tokenizer_config.json"};
    for (int k = 0; k < 2; k++) {
        int rc;
        if (path_join(path, sizeof path, dir, names[k])) return -1;
        cJSON *j = read_json(path, &rc);
        if (rc) return -1;
        if (!j) continue;
        int32_t id;
        if ((id = config_token(t, j, "bos_token")) >= 0) t->bos_id = id;
        if ((id = config_token(t, j, "eos_token")) >= 0) t->eos_id = id;
        if (k == 1) {
            const cJSON *ct = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
            const char *tmpl = cJSON_IsString(ct) ? ct->valuestring : NULL;
            if (cJSON_IsArray(ct)) {  // [{"name": "default", "template": ...}, ...]
                const cJSON *it;
                cJSON_ArrayForEach(it, ct) {
                    const char *name = str_of(it, "name");
                    if (!tmpl || (name && !strcmp(name, "default"))) tmpl = str_of(it, "template");
                }
            }
            if (tmpl && !(t->chat_template = dup_str(tmpl, NULL))) rc = err_set("%s: out of memory", path);
            // transformers' Llama tokenizers add BOS/EOS from these flags when the
            // tokenizer.json post-processor does not already do it.
            if (!t->n_prefix && bool_of(j, "add_bos_token", 0) && t->bos_id >= 0)
                rc = rc || append_ids(t, &t->prefix, &t->n_prefix, &t->bos_id, 1);
            if (!t->n_suffix && bool_of(j, "add_eos_token", 0) && t->eos_id >= 0)
                rc = rc || append_ids(t, &t->suffix, &t->n_suffix, &t->eos_id, 1);
        }
        cJSON_Delete(j);
        if (rc) return -1;
    }
    return 0;
}

// GPT-2 style files name no EOS anywhere; transformers' GPT-2 classes default it to
// <|endoftext|>, and so do we when that special token exists.
static void default_eos(tokenizer *t) {
    if (t->eos_id >= 0) return;
    int32_t id = tokenizer_token_id(t, "<|endoftext|>");
    if (id >= 0 && t->tok_special[id]) t->eos_id = id;
}

int tok_load_json(tokenizer *t, const char *json_path) {
    int rc;
    cJSON *j = read_json(json_path, &rc);
    if (!j) return rc ? -1 : err_set("%s: no such file", json_path);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens"), *it;
    int32_t max_added = -1;
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsNumber(id)) continue;
        // The bound of model.vocab ids (TOK_MAX_ID): the id tables are allocated up to the
        // largest id.
        long long n;
        if (!json_whole(id, 0, TOK_MAX_ID, &n)) {
            err_set("%s: added_tokens: id %g is not a valid id (an integer in [0, %d])", json_path,
                    id->valuedouble, TOK_MAX_ID);
            cJSON_Delete(j);
            return -1;
        }
        if (n > max_added) max_added = (int32_t)n;
    }
    rc = parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(j, "normalizer")) ||
         parse_pretok(t, cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer")) ||
         parse_model(t, cJSON_GetObjectItemCaseSensitive(j, "model"), max_added) ||
         parse_added(t, added) ||
         parse_post(t, cJSON_GetObjectItemCaseSensitive(j, "post_processor")) ||
         parse_decoder(t, cJSON_GetObjectItemCaseSensitive(j, "decoder"));
    cJSON_Delete(j);
    if (rc) return -1;
    snprintf(t->kind, sizeof t->kind, "BPE %s", t->bpe.byte_level ? "byte-level" : "sentencepiece");
    char *copy = strdup(json_path);
    if (!copy) return err_set("%s: out of memory", json_path);
    rc = load_configs(t, dirname(copy));
    free(copy);
    if (!rc) default_eos(t);
    return rc;
}
