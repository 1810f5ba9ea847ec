// Internals of the tokenizer shared by its source files (tokenizer/tok_*.c, tokenizer.c).
// The pipeline mirrors Hugging Face `tokenizers`: added tokens are split off first, each
// remaining piece is normalized, pre-tokenized into words, and each word goes through BPE.
#ifndef MEDTUNE_TOKENIZER_TOK_INTERNAL_H
#define MEDTUNE_TOKENIZER_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sha256.h"
#include "tokenizer/tokenizer.h"

// ---- growable buffers ---------------------------------------------------------------------

// Raw bytes, not NUL-terminated text (so not a strbuf): scratch buffers reused across encodes
// by resetting len, swapped between pipeline stages, or wrapped around the caller's input.
typedef struct {
    char *p;
    size_t len, cap;
} tok_buf;

int tok_buf_reserve(tok_buf *b, size_t extra);
int tok_buf_put(tok_buf *b, const void *s, size_t n);
void tok_buf_free(tok_buf *b);

// A piece of text inside a tok_buf. `first` marks the piece that begins at offset 0 of the
// caller's input (Metaspace prepend_scheme "first" only prepends there).
typedef struct {
    size_t off, len;
    int first;
} tok_span;

typedef struct {
    tok_span *v;
    size_t n, cap;
} tok_spans;

int tok_spans_push(tok_spans *s, size_t off, size_t len, int first);
void tok_spans_free(tok_spans *s);

// ---- UTF-8 and Unicode classes (utf8proc) -------------------------------------------------

// Decodes one code point of valid UTF-8 at s (n >= 1 bytes available); returns its length.
int utf8_next(const uint8_t *s, size_t n, int32_t *cp);
int utf8_encode(int32_t cp, char out[4]);
// Copies `len` bytes to `out`, replacing each maximal ill-formed subsequence with U+FFFD
// exactly as Python's bytes.decode("utf-8", errors="replace") and Rust's from_utf8_lossy do.
// Returns the number of replacements made.
size_t utf8_sanitize(const char *s, size_t len, tok_buf *out);
// Rust char::is_whitespace / Unicode White_Space (= onig's \s): Zs, Zl, Zp, \t..\r, U+0085.
int uc_is_space(int32_t cp);
int uc_is_alnum(int32_t cp);  // letters (L*) and numbers (N*)
int uc_is_numeric(int32_t cp);  // N*: Rust char::is_numeric

// ---- regexes ------------------------------------------------------------------------------

typedef struct {
    pcre2_code *code;
    char *source;  // the pattern as written in the tokenizer file
} tok_regex;

// Compiles an Oniguruma-flavoured pattern (as HF writes them) with PCRE2 UTF+UCP, mapping
// \s and \S to onig's Unicode whitespace. `what` names the pattern in errors.
int tok_regex_compile(tok_regex *r, const char *pattern, size_t len, const char *what);
void tok_regex_free(tok_regex *r);

// A piece of text split off by added-token matching: token is an index into
// tokenizer.added, or -1 for ordinary text.
typedef struct {
    size_t off, len;
    int32_t token;
} added_split;

typedef struct {
    added_split *v;
    size_t n, cap;
} added_splits;

// Per-call scratch memory, pooled in the tokenizer so concurrent encodes never share state.
typedef struct tok_scratch {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    tok_buf buf[4];
    tok_spans spans[3];
    void *sym;  // BPE symbols
    size_t sym_cap;
    void *heap;  // BPE merge queue
    size_t heap_cap;
    added_splits added[2];  // added-token splits of the raw text and of a normalized piece
    struct tok_scratch *next;
} tok_scratch;

// Finds the next match of `r` in s[start..len). Returns 1 (with [*ms, *me)), 0, or -1 on error.
int tok_regex_find(const tok_regex *r, tok_scratch *sc, const char *s, size_t len, size_t start,
                   size_t *ms, size_t *me);

// ---- normalizers --------------------------------------------------------------------------

typedef enum {
    TOK_NORM_NFC,
    TOK_NORM_NFD,
    TOK_NORM_NFKC,
    TOK_NORM_NFKD,
    TOK_NORM_LOWERCASE,
    TOK_NORM_STRIP,
    TOK_NORM_STRIP_ACCENTS,
    TOK_NORM_REPLACE,
    TOK_NORM_PREPEND,
} tok_norm_type;

typedef struct {
    tok_norm_type type;
    char *pattern;  // REPLACE with a String pattern
    size_t pattern_len;
    tok_regex re;  // REPLACE with a Regex pattern (re.code != NULL)
    char *content;  // REPLACE replacement / PREPEND prefix
    size_t content_len;
    int left, right;  // STRIP
} tok_normalizer;

// Applies the chain to s[0..len), result in out (cleared first). tmp is scratch.
int tok_normalize(const tok_normalizer *n, size_t count, tok_scratch *sc, const char *s,
                  size_t len, tok_buf *out, tok_buf *tmp);
void tok_normalizer_free(tok_normalizer *n);

// ---- pre-tokenizers -----------------------------------------------------------------------

typedef enum {
    TOK_PRE_BYTE_LEVEL,
    TOK_PRE_SPLIT,
    TOK_PRE_METASPACE,
    TOK_PRE_DIGITS,
    TOK_PRE_WHITESPACE_SPLIT,
} tok_pre_type;

typedef enum {
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_MERGED_WITH_PREVIOUS,
    TOK_SPLIT_MERGED_WITH_NEXT,
    TOK_SPLIT_CONTIGUOUS,
} tok_split_behavior;

typedef enum { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER } tok_prepend_scheme;

typedef struct {
    tok_pre_type type;
    tok_regex re;  // SPLIT (regex) and BYTE_LEVEL with use_regex
    char *literal;  // SPLIT with a String pattern
    size_t literal_len;
    tok_split_behavior behavior;
    int invert;
    int add_prefix_space, use_regex;  // BYTE_LEVEL
    char replacement[8];  // METASPACE, UTF-8
    int replacement_len;
    tok_prepend_scheme prepend_scheme;
    int split;
    int individual_digits;  // DIGITS
} tok_pretok;

// Splits every span of `in` into words written to `out` (cleared first).
int tok_pretokenize(const tok_pretok *p, tok_scratch *sc, const tok_buf *in,
                    const tok_spans *ins, tok_buf *out, tok_spans *outs);
void tok_pretok_free(tok_pretok *p);
// The GPT-2 pattern the ByteLevel pre-tokenizer uses when use_regex is true.
extern const char TOK_GPT2_PATTERN[];

// ---- BPE model ----------------------------------------------------------------------------

typedef struct {
    uint64_t key;  // left id << 32 | right id; UINT64_MAX when the slot is empty
    int32_t rank, id;
} tok_merge_slot;

typedef struct {
    const char *s;
    uint32_t len, hash;
    int32_t id;
} tok_str_slot;

typedef struct {
    tok_str_slot *slots;
    size_t mask, count;
} tok_str_map;

int tok_str_map_init(tok_str_map *m, size_t expected);
// Inserts or overwrites; `s` must outlive the map.
int tok_str_map_put(tok_str_map *m, const char *s, uint32_t len, int32_t id);
int32_t tok_str_map_get(const tok_str_map *m, const char *s, uint32_t len);
void tok_str_map_free(tok_str_map *m);

#define TOK_CACHE_STRIPES 16

typedef struct {
    pthread_mutex_t lock;
    tok_str_slot *slots;  // s: key bytes followed by the ids, len: key length, id: id count
    size_t mask, count;
} tok_cache_stripe;

typedef struct {
    int byte_level;  // words are raw bytes; vocab keys were mapped back from the byte alphabet
    tok_str_map vocab;  // model-space string -> id
    tok_merge_slot *merges;
    size_t merges_mask, n_merges;
    int32_t unk_id;  // -1 when none
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_id[256];  // byte-level: single-byte tokens; SPM: <0xNN> tokens (-1 when absent)
    tok_cache_stripe cache[TOK_CACHE_STRIPES];
    char *arena;  // model-space key strings
} tok_bpe;

int tok_bpe_init(tok_bpe *b, size_t n_vocab, size_t n_merges);
int tok_bpe_add_merge(tok_bpe *b, int32_t left, int32_t right, int32_t rank, int32_t id);
// Appends the ids of one pre-tokenized word (model space) to out.
int tok_bpe_encode_word(const tok_bpe *b, tok_scratch *sc, const char *w, size_t len,
                        id_vec *out);
void tok_bpe_free(tok_bpe *b);

// Byte-level alphabet (GPT-2's bytes_to_unicode): code point -> byte (-1: not in it).
int tok_cp_to_byte(int32_t cp);

// ---- added tokens -------------------------------------------------------------------------

typedef struct {
    char *content;
    size_t len;
    int32_t id;
    int special, lstrip, rstrip, normalized, single_word;
} tok_added;

// Leftmost-longest matcher over a set of patterns (Aho-Corasick LeftmostLongest semantics).
typedef struct {
    char **pat;
    size_t *len;
    int32_t *token;  // index into tokenizer.added
    size_t n;
    int32_t first[257];  // patterns sorted by first byte then length desc: start offsets
} tok_matcher;

// ---- decoders -----------------------------------------------------------------------------

typedef enum {
    TOK_DEC_BYTE_LEVEL,
    TOK_DEC_METASPACE,
    TOK_DEC_REPLACE,
    TOK_DEC_BYTE_FALLBACK,
    TOK_DEC_FUSE,
    TOK_DEC_STRIP,
} tok_dec_type;

typedef struct {
    tok_dec_type type;
    char *pattern, *content;  // REPLACE (String pattern), STRIP (content char)
    size_t pattern_len, content_len;
    int start, stop;  // STRIP
    char replacement[8];  // METASPACE
    int replacement_len;
    int prepend;  // METASPACE: strip the first token's leading space
} tok_decoder;

void tok_decoder_free(tok_decoder *d);

// ---- the tokenizer ------------------------------------------------------------------------

#define TOK_MAX_STAGES 16

struct tokenizer {
    char kind[160];
    char *source;  // file it was loaded from, for messages

    tok_normalizer norm[TOK_MAX_STAGES];
    size_t n_norm;
    tok_pretok pre[TOK_MAX_STAGES];
    size_t n_pre;
    tok_bpe bpe;

    int32_t n_ids;  // id space: max id + 1
    size_t cap_ids;  // capacity of every id-indexed array below
    char **tok_str;  // id -> token string for decoding: added content, else model_str
    uint32_t *tok_len;
    uint8_t *tok_special;  // id -> 1 when it is a special added token
    char **model_str;  // id -> model vocabulary string as in the file, or NULL
    char **model_key;  // id -> model-space key (raw bytes for byte-level), or NULL
    uint32_t *model_key_len;
    int32_t *merge_pairs;  // (left, right) ids by rank
    size_t n_merge_pairs, cap_merge_pairs;

    tok_added *added;
    size_t n_added, cap_added;
    tok_matcher match_raw, match_norm;

    int32_t *prefix, *suffix;  // post-processor ids around a single sequence
    size_t n_prefix, n_suffix;

    tok_decoder dec[TOK_MAX_STAGES];
    size_t n_dec;
    int has_decoder;

    int32_t bos_id, eos_id;
    int adds_bos;
    char *chat_template;

    char fingerprint[65];

    pthread_mutex_t pool_lock;
    tok_scratch *pool;
};

// The largest id a tokenizer.json may name, 2^22 - 1 (4.2 M ids): 16 times Gemma 3's 262,144,
// the largest vocabulary medtune loads. The id tables are allocated up to the largest id, 33
// bytes per id, so this keeps them under 140 MB; the bound of 1e8 before it let one id ask
// for 3.3 GB (found by the fuzz campaign, docs/fuzzing.md).
#define TOK_MAX_ID ((1 << 22) - 1)

// Loader helpers used by tok_load_json.c and tok_load_gguf.c.
int tok_set_ids(tokenizer *t, int32_t n_ids);
int tok_set_token(tokenizer *t, int32_t id, const char *s, size_t len);
// Model vocabulary entry (file spelling); bpe.byte_level must already be set.
int tok_model_token(tokenizer *t, int32_t id, const char *s, size_t len);
// Next merge in rank order, by the file spellings of its two halves.
int tok_model_merge(tokenizer *t, const char *l, size_t ll, const char *r, size_t rl);
// Added token (after the model vocabulary is complete).
int tok_add_added(tokenizer *t, const tok_added *a);

int tok_load_json(tokenizer *t, const char *json_path);
int tok_load_gguf(tokenizer *t, const char *gguf_path);

#endif
