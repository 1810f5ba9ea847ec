// Writes a loaded tokenizer back as a Hugging Face tokenizer.json: the inverse of
// tok_load_json.c, component by component, in the field names and shapes `tokenizers` 0.19+
// reads. A GGUF vocabulary saved this way loads in HF `tokenizers` (and medtune) with the
// same ids and the same fingerprint as the GGUF itself.
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "tokenizer/tok_internal.h"

// cJSON strings are NUL-terminated; every string a tokenizer holds is valid UTF-8 without NUL.
static cJSON *str_n(const char *s, size_t len) {
    char *c = malloc(len + 1);
    if (!c) return NULL;
    memcpy(c, s, len);
    c[len] = '\0';
    cJSON *j = cJSON_CreateString(c);
    free(c);
    return j;
}

static cJSON *typed(const char *type) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

// {"String": literal} or {"Regex": source}.
static cJSON *pattern_json(const char *literal, size_t literal_len, const tok_regex *re) {
    cJSON *p = cJSON_CreateObject();
    if (re && re->code) cJSON_AddStringToObject(p, "Regex", re->source);
    else cJSON_AddItemToObject(p, "String", str_n(literal, literal_len));
    return p;
}

// null, the one component of `items`, or a Sequence of them under `list_key`.
static cJSON *sequence(cJSON *items, const char *list_key) {
    int n = cJSON_GetArraySize(items);
    if (n <= 1) {
        cJSON *one = n ? cJSON_DetachItemFromArray(items, 0) : cJSON_CreateNull();
        cJSON_Delete(items);
        return one;
    }
    cJSON *s = typed("Sequence");
    cJSON_AddItemToObject(s, list_key, items);
    return s;
}

static const char *prepend_name(tok_prepend_scheme p) {
    return p == TOK_PREPEND_FIRST ? "first" : p == TOK_PREPEND_NEVER ? "never" : "always";
}

static cJSON *normalizer_json(const tokenizer *t) {
    static const char *const SIMPLE[] = {
        [TOK_NORM_NFC] = "NFC",          [TOK_NORM_NFD] = "NFD",
        [TOK_NORM_NFKC] = "NFKC",        [TOK_NORM_NFKD] = "NFKD",
        [TOK_NORM_LOWERCASE] = "Lowercase", [TOK_NORM_STRIP_ACCENTS] = "StripAccents",
        [TOK_NORM_STRIP] = "Strip",      [TOK_NORM_REPLACE] = "Replace",
        [TOK_NORM_PREPEND] = "Prepend"};
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; i < t->n_norm; i++) {
        const tok_normalizer *n = &t->norm[i];
        cJSON *o = typed(SIMPLE[n->type]);
        if (n->type == TOK_NORM_STRIP) {
            cJSON_AddBoolToObject(o, "strip_left", n->left);
            cJSON_AddBoolToObject(o, "strip_right", n->right);
        } else if (n->type == TOK_NORM_REPLACE) {
            cJSON_AddItemToObject(o, "pattern", pattern_json(n->pattern, n->pattern_len, &n->re));
            cJSON_AddItemToObject(o, "content", str_n(n->content, n->content_len));
        } else if (n->type == TOK_NORM_PREPEND) {
            cJSON_AddItemToObject(o, "prepend", str_n(n->content, n->content_len));
        }
        cJSON_AddItemToArray(list, o);
    }
    return sequence(list, "normalizers");
}

static cJSON *pretok_json(const tokenizer *t) {
    static const char *const BEHAVIOR[] = {
        [TOK_SPLIT_REMOVED] = "Removed", [TOK_SPLIT_ISOLATED] = "Isolated",
        [TOK_SPLIT_MERGED_WITH_PREVIOUS] = "MergedWithPrevious",
        [TOK_SPLIT_MERGED_WITH_NEXT] = "MergedWithNext", [TOK_SPLIT_CONTIGUOUS] = "Contiguous"};
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; i < t->n_pre; i++) {
        const tok_pretok *p = &t->pre[i];
        cJSON *o;
        switch (p->type) {
        case TOK_PRE_BYTE_LEVEL:
            o = typed("ByteLevel");
            cJSON_AddBoolToObject(o, "add_prefix_space", p->add_prefix_space);
            cJSON_AddBoolToObject(o, "trim_offsets", 1);
            cJSON_AddBoolToObject(o, "use_regex", p->use_regex);
            break;
        case TOK_PRE_SPLIT:
            o = typed("Split");
            cJSON_AddItemToObject(o, "pattern", pattern_json(p->literal, p->literal_len, &p->re));
            cJSON_AddStringToObject(o, "behavior", BEHAVIOR[p->behavior]);
            cJSON_AddBoolToObject(o, "invert", p->invert);
            break;
        case TOK_PRE_METASPACE:
            o = typed("Metaspace");
            cJSON_AddItemToObject(o, "replacement", str_n(p->replacement, (size_t)p->replacement_len));
            cJSON_AddStringToObject(o, "prepend_scheme", prepend_name(p->prepend_scheme));
            cJSON_AddBoolToObject(o, "split", p->split);
            break;
        case TOK_PRE_DIGITS:
            o = typed("Digits");
            cJSON_AddBoolToObject(o, "individual_digits", p->individual_digits);
            break;
        default:
            o = typed("WhitespaceSplit");
            break;
        }
        cJSON_AddItemToArray(list, o);
    }
    return sequence(list, "pretokenizers");
}

static cJSON *decoder_json(const tokenizer *t) {
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; i < t->n_dec; i++) {
        const tok_decoder *d = &t->dec[i];
        cJSON *o;
        switch (d->type) {
        case TOK_DEC_BYTE_LEVEL:
            o = typed("ByteLevel");
            cJSON_AddBoolToObject(o, "add_prefix_space", 1);
            cJSON_AddBoolToObject(o, "trim_offsets", 1);
            cJSON_AddBoolToObject(o, "use_regex", 1);
            break;
        case TOK_DEC_METASPACE:
            o = typed("Metaspace");
            cJSON_AddItemToObject(o, "replacement", str_n(d->replacement, (size_t)d->replacement_len));
            cJSON_AddStringToObject(o, "prepend_scheme", d->prepend ? "always" : "never");
            cJSON_AddBoolToObject(o, "split", 1);
            break;
        case TOK_DEC_REPLACE:
            o = typed("Replace");
            cJSON_AddItemToObject(o, "pattern", pattern_json(d->pattern, d->pattern_len, NULL));
            cJSON_AddItemToObject(o, "content", str_n(d->content, d->content_len));
            break;
        case TOK_DEC_BYTE_FALLBACK:
            o = typed("ByteFallback");
            break;
        case TOK_DEC_FUSE:
            o = typed("Fuse");
            break;
        default:
            o = typed("Strip");
            cJSON_AddItemToObject(o, "content", str_n(d->content, d->content_len));
            cJSON_AddNumberToObject(o, "start", d->start);
            cJSON_AddNumberToObject(o, "stop", d->stop);
            break;
        }
        cJSON_AddItemToArray(list, o);
    }
    return sequence(list, "decoders");
}

// [{"SpecialToken": {"id": token, "type_id": type}}] entries for `ids`.
static void template_specials(const tokenizer *t, cJSON *seq, cJSON *specials, const int32_t *ids,
                              size_t n, int type_id) {
    for (size_t i = 0; i < n; i++) {
        const char *tok = t->tok_str[ids[i]];
        cJSON *e = cJSON_CreateObject(), *st = cJSON_AddObjectToObject(e, "SpecialToken");
        cJSON_AddStringToObject(st, "id", tok);
        cJSON_AddNumberToObject(st, "type_id", type_id);
        cJSON_AddItemToArray(seq, e);
        if (cJSON_GetObjectItemCaseSensitive(specials, tok)) continue;
        cJSON *def = cJSON_AddObjectToObject(specials, tok);
        cJSON_AddStringToObject(def, "id", tok);
        cJSON_AddItemToObject(def, "ids", cJSON_CreateIntArray(&ids[i], 1));
        cJSON *toks = cJSON_AddArrayToObject(def, "tokens");
        cJSON_AddItemToArray(toks, cJSON_CreateString(tok));
    }
}

static void template_sequence(cJSON *seq, const char *name, int type_id) {
    cJSON *e = cJSON_CreateObject(), *s = cJSON_AddObjectToObject(e, "Sequence");
    cJSON_AddStringToObject(s, "id", name);
    cJSON_AddNumberToObject(s, "type_id", type_id);
    cJSON_AddItemToArray(seq, e);
}

// The ids added around a sequence as a TemplateProcessing (a pair repeats them around B).
static cJSON *post_json(const tokenizer *t) {
    if (!t->n_prefix && !t->n_suffix) return cJSON_CreateNull();
    cJSON *o = typed("TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(o, "single"), *pair = cJSON_AddArrayToObject(o, "pair");
    cJSON *specials = cJSON_CreateObject();
    template_specials(t, single, specials, t->prefix, t->n_prefix, 0);
    template_sequence(single, "A", 0);
    template_specials(t, single, specials, t->suffix, t->n_suffix, 0);
    for (int k = 0; k < 2; k++) {
        template_specials(t, pair, specials, t->prefix, t->n_prefix, k);
        template_sequence(pair, k ? "B" : "A", k);
        template_specials(t, pair, specials, t->suffix, t->n_suffix, k);
    }
    cJSON_AddItemToObject(o, "special_tokens", specials);
    return o;
}

static cJSON *model_json(const tokenizer *t) {
    cJSON *m = typed("BPE");
    cJSON_AddNullToObject(m, "dropout");
    if (t->bpe.unk_id >= 0) cJSON_AddStringToObject(m, "unk_token", t->model_str[t->bpe.unk_id]);
    else cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddBoolToObject(m, "fuse_unk", t->bpe.fuse_unk);
    cJSON_AddBoolToObject(m, "byte_fallback", t->bpe.byte_fallback);
    cJSON_AddBoolToObject(m, "ignore_merges", t->bpe.ignore_merges);
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
    for (int32_t id = 0; id < t->n_ids; id++)
        if (t->model_str[id]) cJSON_AddNumberToObject(vocab, t->model_str[id], id);
    cJSON *merges = cJSON_AddArrayToObject(m, "merges");
    for (size_t r = 0; r < t->n_merge_pairs; r++) {
        const char *a = t->model_str[t->merge_pairs[2 * r]], *b = t->model_str[t->merge_pairs[2 * r + 1]];
        if (strchr(a, ' ') || strchr(b, ' ')) {
            // "a b" cannot hold a token with a space: the pair form can.
            cJSON *p = cJSON_CreateArray();
            cJSON_AddItemToArray(p, cJSON_CreateString(a));
            cJSON_AddItemToArray(p, cJSON_CreateString(b));
            cJSON_AddItemToArray(merges, p);
            continue;
        }
        size_t la = strlen(a), lb = strlen(b);
        char *s = malloc(la + lb + 2);
        if (!s) return cJSON_Delete(m), NULL;
        memcpy(s, a, la);
        s[la] = ' ';
        memcpy(s + la + 1, b, lb + 1);
        cJSON_AddItemToArray(merges, cJSON_CreateString(s));
        free(s);
    }
    return m;
}

static cJSON *added_json(const tokenizer *t) {
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; i < t->n_added; i++) {
        const tok_added *a = &t->added[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", a->id);
        cJSON_AddItemToObject(o, "content", str_n(a->content, a->len));
        cJSON_AddBoolToObject(o, "single_word", a->single_word);
        cJSON_AddBoolToObject(o, "lstrip", a->lstrip);
        cJSON_AddBoolToObject(o, "rstrip", a->rstrip);
        cJSON_AddBoolToObject(o, "normalized", a->normalized);
        cJSON_AddBoolToObject(o, "special", a->special);
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

char *tokenizer_to_json(const tokenizer *t) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", "1.0");
    cJSON_AddNullToObject(j, "truncation");
    cJSON_AddNullToObject(j, "padding");
    cJSON_AddItemToObject(j, "added_tokens", added_json(t));
    cJSON_AddItemToObject(j, "normalizer", normalizer_json(t));
    cJSON_AddItemToObject(j, "pre_tokenizer", pretok_json(t));
    cJSON_AddItemToObject(j, "post_processor", post_json(t));
    cJSON_AddItemToObject(j, "decoder", t->has_decoder ? decoder_json(t) : cJSON_CreateNull());
    cJSON *model = model_json(t);
    char *text = NULL;
    if (model) {
        cJSON_AddItemToObject(j, "model", model);
        text = cJSON_PrintUnformatted(j);
    }
    cJSON_Delete(j);
    if (!text) err_set("%s: out of memory writing tokenizer.json", t->source);
    return text;
}
