// Loads a tokenizer from GGUF metadata (tokenizer.ggml.*) and configures it as the Hugging
// Face tokenizer.json of the same model would be: "gpt2" vocabularies become byte-level BPE
// with the pre-tokenizer named by tokenizer.ggml.pre; "llama" (SentencePiece) vocabularies
// become the BPE that transformers' LlamaConverter builds, merges ranked by piece score;
// Gemma's (a "llama" vocabulary of a gemma* architecture, or "gemma4") become transformers'
// GemmaTokenizer, as its GGUF reader builds it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "tokenizer/tok_internal.h"
#include "formats/gguf.h"

// Token types written by llama.cpp (llama_token_type).
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static const char LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static tok_pretok *add_pre(tokenizer *t, tok_pre_type type) {
    tok_pretok *p = &t->pre[t->n_pre++];
    memset(p, 0, sizeof *p);
    p->type = type;
    return p;
}

static int add_split(tokenizer *t, const char *pattern) {
    tok_pretok *p = add_pre(t, TOK_PRE_SPLIT);
    p->behavior = TOK_SPLIT_ISOLATED;
    return tok_regex_compile(&p->re, pattern, strlen(pattern), t->source);
}

static int add_byte_level(tokenizer *t, int use_regex) {
    tok_pretok *p = add_pre(t, TOK_PRE_BYTE_LEVEL);
    p->use_regex = use_regex;
    t->bpe.byte_level = 1;
    return use_regex ? tok_regex_compile(&p->re, TOK_GPT2_PATTERN, strlen(TOK_GPT2_PATTERN), t->source) : 0;
}

// The HF pre-tokenizer pipelines behind llama.cpp's tokenizer.ggml.pre names.
static int setup_byte_level(tokenizer *t, const char *pre) {
    if (!*pre || !strcmp(pre, "default") || !strcmp(pre, "gpt-2") || !strcmp(pre, "gpt2"))
        return add_byte_level(t, 1);
    if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3")) {
        t->bpe.ignore_merges = 1;
        return add_split(t, LLAMA3_PATTERN) || add_byte_level(t, 0);
    }
    if (!strcmp(pre, "qwen2")) {
        t->norm[t->n_norm++] = (tok_normalizer){.type = TOK_NORM_NFC};
        return add_split(t, QWEN2_PATTERN) || add_byte_level(t, 0);
    }
    if (!strcmp(pre, "smollm") || !strcmp(pre, "starcoder") || !strcmp(pre, "refact")) {
        add_pre(t, TOK_PRE_DIGITS)->individual_digits = 1;
        return add_byte_level(t, 1);
    }
    return err_set("%s: tokenizer.ggml.pre '%s' is not supported", t->source, pre);
}

// The decoder's Strip removes the space a prepended "▁" decodes to, so it comes only with
// the prefix (transformers' LlamaTokenizer and GemmaTokenizer alike).
static int setup_sentencepiece(tokenizer *t, int add_space_prefix) {
    static const char SPIECE[] = "\xE2\x96\x81";  // U+2581
    if (add_space_prefix) {
        tok_normalizer *n = &t->norm[t->n_norm++];
        *n = (tok_normalizer){.type = TOK_NORM_PREPEND};
        if (!(n->content = strdup(SPIECE))) return err_set("%s: out of memory", t->source);
        n->content_len = 3;
    }
    tok_normalizer *r = &t->norm[t->n_norm++];
    *r = (tok_normalizer){.type = TOK_NORM_REPLACE};
    r->pattern = strdup(" ");
    r->content = strdup(SPIECE);
    if (!r->pattern || !r->content) return err_set("%s: out of memory", t->source);
    r->pattern_len = 1;
    r->content_len = 3;
    t->bpe.byte_fallback = t->bpe.fuse_unk = 1;
    t->has_decoder = 1;
    tok_decoder *d = &t->dec[t->n_dec++];
    *d = (tok_decoder){.type = TOK_DEC_REPLACE};
    d->pattern = strdup(SPIECE);
    d->content = strdup(" ");
    if (!d->pattern || !d->content) return err_set("%s: out of memory", t->source);
    d->pattern_len = 3;
    d->content_len = 1;
    t->dec[t->n_dec++] = (tok_decoder){.type = TOK_DEC_BYTE_FALLBACK};
    t->dec[t->n_dec++] = (tok_decoder){.type = TOK_DEC_FUSE};
    if (!add_space_prefix) return 0;
    d = &t->dec[t->n_dec++];
    *d = (tok_decoder){.type = TOK_DEC_STRIP, .start = 1};
    if (!(d->content = strdup(" "))) return err_set("%s: out of memory", t->source);
    d->content_len = 1;
    return 0;
}

// transformers' SentencePieceExtractor: every split of a piece into two known pieces is a
// merge, ranked by the score of the merged piece (higher first); ties keep vocabulary order
// and, within one piece, (left id, right id) order. Gemma's are ranked by vocabulary position
// instead, and the splits of one piece longest left part first (transformers'
// generate_merges, which the merges of Gemma's own tokenizer.json follow too).
typedef struct {
    int32_t l, r, piece;
    size_t cut;
    float score;
} sp_merge;

static int sp_merge_cmp(const void *a, const void *b) {
    const sp_merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->piece != y->piece) return x->piece < y->piece ? -1 : 1;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

static int sp_merge_cmp_position(const void *a, const void *b) {
    const sp_merge *x = a, *y = b;
    if (x->piece != y->piece) return x->piece < y->piece ? -1 : 1;
    return x->cut > y->cut ? -1 : x->cut < y->cut;
}

// scores NULL: ranked by position (Gemma).
static int sentencepiece_merges(tokenizer *t, const float *scores, int32_t n) {
    sp_merge *m = NULL;
    size_t nm = 0, cap = 0;
    int rc = 0;
    for (int32_t id = 0; id < n && !rc; id++) {
        const char *s = t->model_str[id];
        if (!s) continue;
        size_t len = strlen(s);
        // Cuts at character boundaries only (Python slices code points).
        for (size_t cut = 1; cut < len && !rc; cut++) {
            if (((uint8_t)s[cut] & 0xC0) == 0x80) continue;
            int32_t l = tok_str_map_get(&t->bpe.vocab, s, (uint32_t)cut);
            int32_t r = tok_str_map_get(&t->bpe.vocab, s + cut, (uint32_t)(len - cut));
            if (l < 0 || r < 0) continue;
            sp_merge *v = vec_grow(m, &cap, nm + 1, sizeof *v);
            if (!v) {
                rc = err_set("%s: out of memory (merges)", t->source);
                break;
            }
            m = v;
            m[nm++] = (sp_merge){l, r, id, cut, scores ? scores[id] : 0};
        }
    }
    // A vocabulary may yield no merge at all (m stays NULL: qsort's pointer must not be).
    if (!rc && nm) qsort(m, nm, sizeof *m, scores ? sp_merge_cmp : sp_merge_cmp_position);
    for (size_t i = 0; i < nm && !rc; i++) {
        const char *s = t->model_str[m[i].piece];
        rc = tok_model_merge(t, s, m[i].cut, s + m[i].cut, strlen(s + m[i].cut));
    }
    free(m);
    return rc;
}

// llama.cpp's converter stores a user-defined SentencePiece token with its "▁" turned into
// spaces. Gemma's runs of "▁" are such tokens, and the tokenizer.json they come from has them
// as vocabulary pieces that merges build: transformers respells every whitespace-only token
// holding a space as that many "▁" (whitespace as Python's str.strip sees it in ASCII).
static int is_spaced_whitespace(const char *s, size_t len) {
    int space = 0;
    for (size_t i = 0; i < len; i++) {
        if (!strchr(" \t\n\v\f\r\x1c\x1d\x1e\x1f", s[i]) || !s[i]) return 0;
        space |= s[i] == ' ';
    }
    return space;
}

static int get_opt_int(const gguf_file *f, const char *key, int64_t *v) {
    return gguf_find(f, key) ? gguf_get_int(f, key, v) : 0;
}

static int get_opt_bool(const gguf_file *f, const char *key, int *v) {
    return gguf_find(f, key) ? gguf_get_bool(f, key, v) : 0;
}

static int load(tokenizer *t, gguf_file *f) {
    char model[64], pre[64] = "";
    if (gguf_get_cstr(f, "tokenizer.ggml.model", model, sizeof model)) return -1;
    if (gguf_find(f, "tokenizer.ggml.pre") && gguf_get_cstr(f, "tokenizer.ggml.pre", pre, sizeof pre)) return -1;
    char arch[64] = "";
    if (gguf_find(f, "general.architecture") && gguf_get_cstr(f, "general.architecture", arch, sizeof arch))
        return -1;
    // gemma: transformers' GemmaTokenizer. A "llama" vocabulary of gemma, gemma2, gemma3
    // carries no merges; "gemma4" carries them, and transformers adds no BOS for it (its chat
    // template writes <bos> itself) whatever add_bos_token says.
    int gemma4 = !strcmp(model, "gemma4");
    int spm = !strcmp(model, "llama") || gemma4;
    int gemma = gemma4 || (spm && !strncmp(arch, "gemma", 5));
    if (!spm && strcmp(model, "gpt2"))
        return err_set("%s: tokenizer.ggml.model '%s' is not supported (gpt2, llama or gemma4)", t->source,
                       model);

    const gguf_kv *tokens, *types = NULL, *scores_kv = NULL, *merges = NULL;
    gguf_type et;
    uint64_t n, nt = 0, ns = 0, nm = 0;
    if (gguf_get_arr(f, "tokenizer.ggml.tokens", &tokens, &et, &n)) return -1;
    if (n == 0 || n > (1u << 24)) return err_set("%s: tokenizer.ggml.tokens has %llu entries", t->source, (unsigned long long)n);
    if (gguf_find(f, "tokenizer.ggml.token_type") && gguf_get_arr(f, "tokenizer.ggml.token_type", &types, &et, &nt)) return -1;
    if (gguf_find(f, "tokenizer.ggml.scores") && gguf_get_arr(f, "tokenizer.ggml.scores", &scores_kv, &et, &ns)) return -1;
    if (gguf_find(f, "tokenizer.ggml.merges") && gguf_get_arr(f, "tokenizer.ggml.merges", &merges, &et, &nm)) return -1;
    if ((types && nt != n) || (scores_kv && ns != n))
        return err_set("%s: tokenizer.ggml.token_type/scores do not have one entry per token", t->source);
    if (!spm && !merges) return err_set("%s: tokenizer.ggml.merges is missing (needed by gpt2 vocabularies)", t->source);

    int add_space_prefix = 1;
    if (get_opt_bool(f, "tokenizer.ggml.add_space_prefix", &add_space_prefix)) return -1;
    if (spm ? setup_sentencepiece(t, add_space_prefix) : setup_byte_level(t, pre)) return -1;
    if (!spm) {
        t->has_decoder = 1;
        t->dec[t->n_dec++] = (tok_decoder){.type = TOK_DEC_BYTE_LEVEL};
    }

    tok_str_map_free(&t->bpe.vocab);
    if (tok_str_map_init(&t->bpe.vocab, n) || tok_set_ids(t, (int32_t)n)) return -1;
    int32_t *type = calloc(n, sizeof *type);
    float *scores = scores_kv ? calloc(n, sizeof *scores) : NULL;
    int rc = !type || (scores_kv && !scores) ? err_set("%s: out of memory", t->source) : 0;
    tok_buf check = {0};
    for (uint64_t i = 0; i < n && !rc; i++) {
        const char *s;
        size_t len;
        int64_t ty = TT_NORMAL;
        double sc = 0;
        rc = gguf_arr_str(f, tokens, i, &s, &len) || (types && gguf_arr_int(f, types, i, &ty)) ||
             (scores_kv && gguf_arr_float(f, scores_kv, i, &sc));
        if (rc) break;
        if (memchr(s, 0, len) || utf8_sanitize(s, len, &check) != 0) {
            rc = err_set("%s: tokenizer.ggml.tokens[%llu] is not valid UTF-8 text", t->source, (unsigned long long)i);
            break;
        }
        type[i] = (int32_t)ty;
        if (scores) scores[i] = (float)sc;
        if (gemma && ty == TT_USER_DEFINED && is_spaced_whitespace(s, len)) {
            // Respelled, it is a vocabulary piece, no longer a user-defined added token.
            check.len = 0;
            for (size_t k = 0; k < len && !rc; k++) rc = tok_buf_put(&check, "\xE2\x96\x81", 3);
            if (rc) {
                rc = err_set("%s: out of memory", t->source);
                break;
            }
            s = check.p;
            len = check.len;
            type[i] = TT_NORMAL;
        }
        rc = tok_model_token(t, (int32_t)i, s, len);
    }
    tok_buf_free(&check);
    for (uint64_t i = 0; i < nm && !rc; i++) {
        const char *s, *sp;
        size_t len;
        if ((rc = gguf_arr_str(f, merges, i, &s, &len))) break;
        sp = memchr(s, ' ', len);
        if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp - s) - 1))
            rc = err_set("%s: tokenizer.ggml.merges[%llu] is not two tokens separated by one space",
                         t->source, (unsigned long long)i);
        else
            rc = tok_model_merge(t, s, (size_t)(sp - s), sp + 1, len - (size_t)(sp - s) - 1);
    }
    // Gemma's scores do not follow its merge order but its vocabulary order does (transformers
    // ranks Gemma's rebuilt merges by position; the -1000 of its user-defined pieces would
    // otherwise put "▁▁" merges after thousands of others).
    if (!rc && spm && !merges) rc = sentencepiece_merges(t, gemma ? NULL : scores, (int32_t)n);

    int64_t v;
    if (!rc && gguf_find(f, "tokenizer.ggml.unknown_token_id")) {
        if (!(rc = gguf_get_int(f, "tokenizer.ggml.unknown_token_id", &v)) && v >= 0 && v < (int64_t)n && spm)
            t->bpe.unk_id = (int32_t)v;
    }
    const char *keys[2] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"};
    int32_t *dst[2] = {&t->bos_id, &t->eos_id};
    for (int k = 0; k < 2 && !rc; k++) {
        v = -1;
        rc = get_opt_int(f, keys[k], &v);
        if (!rc && v >= 0 && v < (int64_t)n) *dst[k] = (int32_t)v;
    }
    // Control and unknown tokens are HF special added tokens, user-defined ones plain added tokens.
    for (uint64_t i = 0; i < n && !rc; i++) {
        if (type[i] != TT_CONTROL && type[i] != TT_UNKNOWN && type[i] != TT_USER_DEFINED) continue;
        const char *s = t->model_str[i];
        if (!s || !*s) continue;
        tok_added a = {(char *)s, strlen(s), (int32_t)i, type[i] != TT_USER_DEFINED, 0, 0, 0, 0};
        rc = tok_add_added(t, &a);
    }
    free(type);
    free(scores);
    if (rc) return -1;

    int add_bos = spm, add_eos = 0;
    if (get_opt_bool(f, "tokenizer.ggml.add_bos_token", &add_bos) ||
        get_opt_bool(f, "tokenizer.ggml.add_eos_token", &add_eos))
        return -1;
    if (gemma4) add_bos = 0;
    if (add_bos && t->bos_id >= 0) {
        if (!(t->prefix = malloc(sizeof *t->prefix))) return err_set("%s: out of memory", t->source);
        t->prefix[t->n_prefix++] = t->bos_id;
    }
    if (add_eos && t->eos_id >= 0) {
        if (!(t->suffix = malloc(sizeof *t->suffix))) return err_set("%s: out of memory", t->source);
        t->suffix[t->n_suffix++] = t->eos_id;
    }
    if (gguf_find(f, "tokenizer.chat_template")) {
        const char *s;
        size_t len;
        if (gguf_get_str(f, "tokenizer.chat_template", &s, &len)) return -1;
        if (!(t->chat_template = malloc(len + 1))) return err_set("%s: out of memory", t->source);
        memcpy(t->chat_template, s, len);
        t->chat_template[len] = '\0';
    }
    snprintf(t->kind, sizeof t->kind, "BPE %s (gguf %s%s%s)", spm ? "sentencepiece" : "byte-level",
             model, *pre ? ", pre " : "", pre);
    return 0;
}

int tok_load_gguf(tokenizer *t, const char *gguf_path) {
    gguf_file f;
    if (gguf_open(&f, gguf_path)) return -1;
    int rc = load(t, &f);
    gguf_close(&f);
    return rc;
}
