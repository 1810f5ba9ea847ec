#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/json_number.h"
#include "common/strbuf.h"
#include "formats/halfconv.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "weight files are little-endian; this reader assumes a little-endian host"
#endif

// The Hugging Face library refuses headers above 100 MB; so do we.
#define ST_MAX_HEADER 100000000ull
// Offsets are JSON numbers (doubles): above 2^53 they cannot be exact.
#define ST_MAX_JSON_INT 9007199254740992.0

static const struct {
    const char *name;
    size_t size;
} DTYPES[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_I32] = {"I32", 4}, [ST_I64] = {"I64", 8}, [ST_U8] = {"U8", 1},
};
#define N_DTYPES ((int)(sizeof DTYPES / sizeof DTYPES[0]))

size_t st_dtype_size(st_dtype d) { return (int)d >= 0 && (int)d < N_DTYPES ? DTYPES[d].size : 0; }

const char *st_dtype_name(st_dtype d) {
    return (int)d >= 0 && (int)d < N_DTYPES ? DTYPES[d].name : "?";
}

int st_dtype_is_float(st_dtype d) { return d == ST_F32 || d == ST_F16 || d == ST_BF16; }

static int dtype_parse(const char *s, st_dtype *out) {
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(s, DTYPES[i].name)) {
            *out = (st_dtype)i;
            return 0;
        }
    return -1;
}

// A JSON number that is a non-negative integer exactly representable in a double.
static int json_uint(const cJSON *v, uint64_t *out) {
    long long n;
    if (!json_whole(v, 0, ST_MAX_JSON_INT, &n)) return -1;
    *out = (uint64_t)n;
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int cmp_meta_key(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

typedef struct {
    const st_tensor *t;
    uint64_t begin, end;
} st_span;

static int cmp_span(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int parse_metadata(st_file *f, const cJSON *obj) {
    if (!cJSON_IsObject(obj)) return err_set("%s: __metadata__: not an object", f->path);
    int n = cJSON_GetArraySize(obj);
    f->meta = xcalloc_or_err((size_t)n, sizeof *f->meta, f->path);
    if (!f->meta) return -1;
    for (const cJSON *kv = obj->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return err_set("%s: __metadata__: %s: value is not a string", f->path, kv->string);
        st_meta *m = &f->meta[f->n_meta++];
        m->key = strdup(kv->string);
        m->value = strdup(kv->valuestring);
        if (!m->key || !m->value) return err_set("%s: out of memory", f->path);
    }
    qsort(f->meta, (size_t)f->n_meta, sizeof *f->meta, cmp_meta_key);
    for (int i = 1; i < f->n_meta; i++)
        if (!strcmp(f->meta[i].key, f->meta[i - 1].key))
            return err_set("%s: __metadata__: %s: duplicate key", f->path, f->meta[i].key);
    return 0;
}

// Parses one header entry; data offsets are kept relative to the data buffer for now.
static int parse_entry(st_file *f, const cJSON *e, st_tensor *t, uint64_t *begin, uint64_t *end) {
    const char *name = e->string;
    t->name = strdup(name);
    if (!t->name) return err_set("%s: out of memory", f->path);
    if (!cJSON_IsObject(e)) return err_set("%s: %s: header entry is not an object", f->path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return err_set("%s: %s: dtype missing or not a string", f->path, name);
    if (dtype_parse(dt->valuestring, &t->dtype) != 0)
        return err_set("%s: %s: unknown dtype '%s' (supported: F32, F16, BF16, I32, I64, U8)",
                       f->path, name, dt->valuestring);
    if (!cJSON_IsArray(shape)) return err_set("%s: %s: shape missing or not an array", f->path, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > ST_MAX_DIMS)
        return err_set("%s: %s: %d dimensions (at most %d supported)", f->path, name, nd,
                       ST_MAX_DIMS);
    t->n_dims = nd;
    size_t n = 1;
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++) {
        uint64_t v;
        if (json_uint(d, &v) != 0)
            return err_set("%s: %s: shape[%d] is not a non-negative integer", f->path, name, i);
        t->shape[i] = (int64_t)v;
        if (__builtin_mul_overflow(n, (size_t)v, &n))
            return err_set("%s: %s: shape overflows", f->path, name);
    }
    t->n_elements = n;
    if (__builtin_mul_overflow(n, st_dtype_size(t->dtype), &t->n_bytes))
        return err_set("%s: %s: shape overflows", f->path, name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        json_uint(offs->child, begin) != 0 || json_uint(offs->child->next, end) != 0)
        return err_set("%s: %s: data_offsets must be [begin, end] non-negative integers", f->path,
                       name);
    if (*end < *begin)
        return err_set("%s: %s: data_offsets [%llu, %llu] end before begin", f->path, name,
                       (unsigned long long)*begin, (unsigned long long)*end);
    if (*end - *begin != t->n_bytes)
        return err_set("%s: %s: data_offsets span %llu bytes but %s shape needs %zu", f->path,
                       name, (unsigned long long)(*end - *begin), st_dtype_name(t->dtype),
                       t->n_bytes);
    return 0;
}

// Spans sorted by offset must tile [0, data_len) exactly.
static int check_tiling(st_file *f, st_span *spans, int n, uint64_t data_len) {
    qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (spans[i].begin > at)
            return err_set("%s: %s: gap in the data buffer before offset %llu", f->path,
                           spans[i].t->name, (unsigned long long)spans[i].begin);
        if (spans[i].begin < at)
            return err_set("%s: %s: data_offsets [%llu, %llu] overlap another tensor", f->path,
                           spans[i].t->name, (unsigned long long)spans[i].begin,
                           (unsigned long long)spans[i].end);
        at = spans[i].end;
    }
    if (at != data_len) {
        if (at > data_len)
            return err_set("%s: %s: data_offsets end at %llu but the data buffer holds %llu "
                           "bytes (truncated file?)",
                           f->path, spans[n - 1].t->name, (unsigned long long)at,
                           (unsigned long long)data_len);
        return err_set("%s: tensors cover %llu bytes but the data buffer holds %llu", f->path,
                       (unsigned long long)at, (unsigned long long)data_len);
    }
    return 0;
}

static int parse_header(st_file *f, const cJSON *root, uint64_t data_start) {
    if (!cJSON_IsObject(root)) return err_set("%s: header is not a JSON object", f->path);
    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__")) n++;
    f->tensors = xcalloc_or_err((size_t)n, sizeof *f->tensors, f->path);
    st_span *spans = xcalloc_or_err((size_t)n, sizeof *spans, f->path);
    uint64_t *offs = xcalloc_or_err((size_t)n, sizeof *offs, f->path);
    if (!f->tensors || !spans || !offs) goto fail;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (f->meta) {
                err_set("%s: __metadata__: duplicate key", f->path);
                goto fail;
            }
            if (parse_metadata(f, e) != 0) goto fail;
            continue;
        }
        int i = f->n_tensors++;
        if (parse_entry(f, e, &f->tensors[i], &spans[i].begin, &spans[i].end) != 0) goto fail;
        spans[i].t = &f->tensors[i];
    }
    uint64_t data_len = f->map.size - data_start;
    if (check_tiling(f, spans, n, data_len) != 0) goto fail;
    for (int i = 0; i < n; i++) offs[spans[i].t - f->tensors] = spans[i].begin;
    for (int i = 0; i < n; i++) f->tensors[i].data = f->map.data + data_start + offs[i];
    free(spans);
    free(offs);
    qsort(f->tensors, (size_t)n, sizeof *f->tensors, cmp_tensor_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(f->tensors[i].name, f->tensors[i - 1].name))
            return err_set("%s: %s: duplicate tensor name", f->path, f->tensors[i].name);
    return 0;
fail:
    free(spans);
    free(offs);
    return -1;
}

int safetensors_open(st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->map.fd = -1;
    if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path)
        return err_set("%s: path too long", path);
    if (mapped_file_open(&f->map, path) != 0) return -1;
    const uint8_t *p = f->map.data;
    size_t size = f->map.size;
    if (size < 8) {
        safetensors_close(f);
        return err_set("%s: file too short for a safetensors header (%zu bytes)", path, size);
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen == 0 || hlen > ST_MAX_HEADER || hlen > size - 8) {
        safetensors_close(f);
        return err_set("%s: header length %llu is invalid for a %zu-byte file (truncated or not "
                       "safetensors?)",
                       path, (unsigned long long)hlen, size);
    }
    const char *json = (const char *)p + 8;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &end, 0);
    if (!root) {
        safetensors_close(f);
        return err_set("%s: header is not valid JSON (near byte %ld)", path,
                       end ? (long)(end - json) + 8 : 8L);
    }
    for (const char *q = end; q < json + hlen; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            cJSON_Delete(root);
            safetensors_close(f);
            return err_set("%s: trailing bytes after the JSON header", path);
        }
    int rc = parse_header(f, root, 8 + hlen);
    cJSON_Delete(root);
    if (rc != 0) safetensors_close(f);
    return rc;
}

void safetensors_close(st_file *f) {
    if (f->tensors)
        for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    if (f->meta)
        for (int i = 0; i < f->n_meta; i++) {
            free(f->meta[i].key);
            free(f->meta[i].value);
        }
    free(f->meta);
    mapped_file_close(&f->map);
    f->tensors = NULL;
    f->meta = NULL;
    f->n_tensors = f->n_meta = 0;
}

const st_tensor *safetensors_find(const st_file *f, const char *name) {
    st_tensor key = {.name = (char *)name};
    if (!f->n_tensors) return NULL;
    return bsearch(&key, f->tensors, (size_t)f->n_tensors, sizeof key, cmp_tensor_name);
}

const char *safetensors_metadata(const st_file *f, const char *key) {
    st_meta k = {.key = (char *)key};
    if (!f->n_meta) return NULL;
    const st_meta *m = bsearch(&k, f->meta, (size_t)f->n_meta, sizeof k, cmp_meta_key);
    return m ? m->value : NULL;
}

int st_tensor_to_f32(const st_file *f, const st_tensor *t, float *out) {
    switch (t->dtype) {
    case ST_F32:
        if (t->n_bytes) memcpy(out, t->data, t->n_bytes);
        return 0;
    case ST_F16:
        fp16_buf_to_f32(t->data, t->n_elements, out);
        return 0;
    case ST_BF16:
        bf16_buf_to_f32(t->data, t->n_elements, out);
        return 0;
    default:
        return err_set("%s: %s: dtype %s is not a floating-point type", f->path, t->name,
                       st_dtype_name(t->dtype));
    }
}

// ---- writer ----

static void json_string_put(strbuf *s, const char *str) {
    strbuf_putc(s, '"');
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        if (*p == '"' || *p == '\\') strbuf_printf(s, "\\%c", *p);
        else if (*p < 0x20) strbuf_printf(s, "\\u%04x", *p);
        else strbuf_putc(s, (char)*p);
    }
    strbuf_putc(s, '"');
}

typedef struct {
    const st_write_tensor *t;
    size_t n_bytes;
    uint64_t begin;
} wt_entry;

static int cmp_wt_name(const void *a, const void *b) {
    return strcmp(((const wt_entry *)a)->t->name, ((const wt_entry *)b)->t->name);
}

// Larger element types first so every tensor starts at a multiple of its element size.
static int cmp_wt_layout(const void *a, const void *b) {
    const wt_entry *x = *(wt_entry *const *)a, *y = *(wt_entry *const *)b;
    size_t sx = st_dtype_size(x->t->dtype), sy = st_dtype_size(y->t->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->t->name, y->t->name);
}

static int build_header(const char *path, wt_entry *e, int n, const st_meta *meta, int n_meta,
                        strbuf *h) {
    strbuf_puts(h, "{");
    int first = 1;
    if (n_meta > 0) {
        st_meta *sorted = xcalloc_or_err((size_t)n_meta, sizeof *sorted, path);
        if (!sorted) return -1;
        memcpy(sorted, meta, (size_t)n_meta * sizeof *sorted);
        qsort(sorted, (size_t)n_meta, sizeof *sorted, cmp_meta_key);
        strbuf_puts(h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) strbuf_puts(h, ",");
            json_string_put(h, sorted[i].key);
            strbuf_puts(h, ":");
            json_string_put(h, sorted[i].value);
        }
        strbuf_puts(h, "}");
        free(sorted);
        first = 0;
    }
    for (int i = 0; i < n; i++) {
        const st_write_tensor *t = e[i].t;
        if (!first) strbuf_puts(h, ",");
        first = 0;
        json_string_put(h, t->name);
        strbuf_puts(h, ":{\"dtype\":\"");
        strbuf_puts(h, st_dtype_name(t->dtype));
        strbuf_puts(h, "\",\"shape\":[");
        for (int d = 0; d < t->n_dims; d++)
            strbuf_printf(h, d ? ",%llu" : "%llu", (unsigned long long)t->shape[d]);
        strbuf_printf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)e[i].begin,
                      (unsigned long long)(e[i].begin + e[i].n_bytes));
    }
    strbuf_puts(h, "}");
    // The data buffer starts 8-byte aligned, as the Hugging Face writer pads it.
    while (!strbuf_failed(h) && (8 + h->len) % 8 != 0) strbuf_putc(h, ' ');
    if (strbuf_failed(h)) return err_set("%s: out of memory building the header", path);
    return 0;
}

static int check_write_tensor(const char *path, const st_write_tensor *t, size_t *n_bytes) {
    if (!t->name || !*t->name || !strcmp(t->name, "__metadata__"))
        return err_set("%s: invalid tensor name '%s'", path, t->name ? t->name : "(null)");
    if (!st_dtype_size(t->dtype)) return err_set("%s: %s: invalid dtype", path, t->name);
    if (t->n_dims < 0 || t->n_dims > ST_MAX_DIMS)
        return err_set("%s: %s: %d dimensions", path, t->name, t->n_dims);
    size_t n = 1;
    for (int d = 0; d < t->n_dims; d++)
        if (t->shape[d] < 0 || __builtin_mul_overflow(n, (size_t)t->shape[d], &n))
            return err_set("%s: %s: invalid shape", path, t->name);
    if (__builtin_mul_overflow(n, st_dtype_size(t->dtype), n_bytes))
        return err_set("%s: %s: invalid shape", path, t->name);
    return 0;
}

int safetensors_write_streamed(const char *path, const st_write_tensor *tensors, int n,
                               const st_meta *meta, int n_meta, st_fetch_fn fetch, void *ctx) {
    wt_entry *e = xcalloc_or_err((size_t)n, sizeof *e, path);
    wt_entry **order = xcalloc_or_err((size_t)n, sizeof *order, path);
    strbuf h;
    strbuf_init(&h);
    atomic_writer w = {.fd = -1};
    int opened = 0;
    if (!e || !order) goto fail;
    for (int i = 0; i < n; i++) {
        e[i].t = &tensors[i];
        if (check_write_tensor(path, &tensors[i], &e[i].n_bytes) != 0) goto fail;
    }
    qsort(e, (size_t)n, sizeof *e, cmp_wt_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(e[i].t->name, e[i - 1].t->name)) {
            err_set("%s: %s: duplicate tensor name", path, e[i].t->name);
            goto fail;
        }
    for (int i = 0; i < n; i++) order[i] = &e[i];
    qsort(order, (size_t)n, sizeof *order, cmp_wt_layout);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        order[i]->begin = at;
        at += order[i]->n_bytes;
    }
    if (build_header(path, e, n, meta, n_meta, &h) != 0) goto fail;
    uint8_t len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    if (atomic_writer_open(&w, path) != 0) goto fail;
    opened = 1;
    if (atomic_writer_write(&w, len_le, 8) != 0 || atomic_writer_write(&w, h.data, h.len) != 0)
        goto fail;
    for (int i = 0; i < n; i++) {
        if (!order[i]->n_bytes) continue;
        const void *data = fetch(ctx, (int)(order[i]->t - tensors));
        if (!data || atomic_writer_write(&w, data, order[i]->n_bytes) != 0) goto fail;
    }
    opened = 0;
    if (atomic_writer_commit(&w) != 0) goto fail;
    free(e);
    free(order);
    strbuf_free(&h);
    return 0;
fail:
    if (opened) atomic_writer_abort(&w);
    free(e);
    free(order);
    strbuf_free(&h);
    return -1;
}

static const void *fetch_in_memory(void *ctx, int index) {
    return ((const st_write_tensor *)ctx)[index].data;
}

int safetensors_write(const char *path, const st_write_tensor *tensors, int n,
                      const st_meta *meta, int n_meta) {
    return safetensors_write_streamed(path, tensors, n, meta, n_meta, fetch_in_memory,
                                      (void *)tensors);
}
