#include "formats/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/str.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "GGUF files read here are little-endian; this reader assumes a little-endian host"
#endif

static const char *const GGUF_TYPE_NAMES[] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool",  "string", "array", "uint64", "int64", "float64",
};

const char *gguf_type_name(gguf_type t) {
    return (unsigned)t < sizeof GGUF_TYPE_NAMES / sizeof *GGUF_TYPE_NAMES ? GGUF_TYPE_NAMES[t]
                                                                          : "unknown";
}

// Bytes of a fixed-size value type; 0 for string, array and invalid ids.
static size_t scalar_size(uint32_t t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

static uint64_t le_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t le_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

// ---- parsing cursor: every read is bounds-checked against the file length ----

typedef struct {
    gguf_file *f;
    size_t pos;
} cursor;

static size_t cur_left(const cursor *c) { return c->f->map.size - c->pos; }

static int cur_need(cursor *c, size_t n, const char *what) {
    if (n > cur_left(c))
        return err_set("%s: %s: truncated file (needs %zu bytes at offset %zu, file has %zu)",
                       c->f->path, what, n, c->pos, c->f->map.size);
    return 0;
}

static int cur_u32(cursor *c, uint32_t *v, const char *what) {
    if (cur_need(c, 4, what) != 0) return -1;
    *v = le_u32(c->f->map.data + c->pos);
    c->pos += 4;
    return 0;
}

static int cur_u64(cursor *c, uint64_t *v, const char *what) {
    if (cur_need(c, 8, what) != 0) return -1;
    *v = le_u64(c->f->map.data + c->pos);
    c->pos += 8;
    return 0;
}

// A length-prefixed string; returns a pointer into the mapping.
static int cur_str(cursor *c, const uint8_t **s, uint64_t *len, const char *what) {
    if (cur_u64(c, len, what) != 0) return -1;
    if (*len > cur_left(c))
        return err_set("%s: %s: string length %llu runs past the end of the file", c->f->path,
                       what, (unsigned long long)*len);
    *s = c->f->map.data + c->pos;
    c->pos += (size_t)*len;
    return 0;
}

static char *dup_name(const gguf_file *f, const uint8_t *s, uint64_t len, const char *what) {
    if (memchr(s, 0, (size_t)len)) {
        err_set("%s: %s: name contains a NUL byte", f->path, what);
        return NULL;
    }
    char *r = xmalloc_or_err((size_t)len + 1, f->path);
    if (!r) return NULL;
    memcpy(r, s, (size_t)len);
    r[len] = '\0';
    return r;
}

static int parse_value(cursor *c, gguf_kv *kv) {
    const char *key = kv->key;
    if (kv->type == GGUF_TYPE_STRING) {
        const uint8_t *s;
        uint64_t len;
        kv->value = c->f->map.data + c->pos;
        return cur_str(c, &s, &len, key);
    }
    if (kv->type != GGUF_TYPE_ARRAY) {
        size_t sz = scalar_size(kv->type);
        if (!sz)
            return err_set("%s: %s: unknown value type %u", c->f->path, key, (unsigned)kv->type);
        if (cur_need(c, sz, key) != 0) return -1;
        kv->value = c->f->map.data + c->pos;
        c->pos += sz;
        return 0;
    }
    uint32_t et;
    if (cur_u32(c, &et, key) != 0 || cur_u64(c, &kv->n, key) != 0) return -1;
    kv->elem_type = (gguf_type)et;
    kv->value = c->f->map.data + c->pos;
    if (et == GGUF_TYPE_STRING) {
        if (kv->n > cur_left(c) / 8)
            return err_set("%s: %s: array of %llu strings runs past the end of the file",
                           c->f->path, key, (unsigned long long)kv->n);
        kv->strs = xcalloc_or_err((size_t)kv->n, sizeof *kv->strs, c->f->path);
        if (!kv->strs) return -1;
        for (uint64_t i = 0; i < kv->n; i++) {
            const uint8_t *s;
            uint64_t len;
            kv->strs[i] = c->f->map.data + c->pos;
            if (cur_str(c, &s, &len, key) != 0) return -1;
        }
        return 0;
    }
    size_t sz = scalar_size(et);
    if (!sz)
        return err_set("%s: %s: unsupported array element type %u", c->f->path, key, et);
    if (kv->n > cur_left(c) / sz)
        return err_set("%s: %s: array of %llu %s runs past the end of the file", c->f->path, key,
                       (unsigned long long)kv->n, gguf_type_name(kv->elem_type));
    c->pos += (size_t)kv->n * sz;
    return 0;
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int parse_kvs(cursor *c, uint64_t n_kv) {
    gguf_file *f = c->f;
    // Each kv takes at least 12 bytes (key length + type), which bounds the allocation.
    if (n_kv > cur_left(c) / 12)
        return err_set("%s: metadata count %llu is impossible for the file size (truncated?)", f->path,
                       (unsigned long long)n_kv);
    f->kvs = xcalloc_or_err((size_t)n_kv, sizeof *f->kvs, f->path);
    if (!f->kvs) return -1;
    for (uint64_t i = 0; i < n_kv; i++) {
        char what[64];
        snprintf(what, sizeof what, "metadata entry %llu", (unsigned long long)i);
        const uint8_t *s;
        uint64_t len;
        uint32_t type;
        if (cur_str(c, &s, &len, what) != 0) return -1;
        gguf_kv *kv = &f->kvs[f->n_kv++];
        kv->n = 1;
        if (!(kv->key = dup_name(f, s, len, what))) return -1;
        if (cur_u32(c, &type, kv->key) != 0) return -1;
        kv->type = (gguf_type)type;
        if (parse_value(c, kv) != 0) return -1;
    }
    const char **keys = xcalloc_or_err((size_t)n_kv, sizeof *keys, f->path);
    if (!keys) return -1;
    for (uint64_t i = 0; i < n_kv; i++) keys[i] = f->kvs[i].key;
    qsort(keys, (size_t)n_kv, sizeof *keys, cmp_cstr);
    int rc = 0;
    for (uint64_t i = 1; i < n_kv && rc == 0; i++)
        if (!strcmp(keys[i], keys[i - 1]))
            rc = err_set("%s: %s: duplicate metadata key", f->path, keys[i]);
    free(keys);
    return rc;
}

static int parse_tensor_info(cursor *c, gguf_tensor *t, int64_t index) {
    gguf_file *f = c->f;
    char what[64];
    snprintf(what, sizeof what, "tensor info %lld", (long long)index);
    const uint8_t *s;
    uint64_t len;
    uint32_t nd, type;
    if (cur_str(c, &s, &len, what) != 0) return -1;
    if (!(t->name = dup_name(f, s, len, what))) return -1;
    if (cur_u32(c, &nd, t->name) != 0) return -1;
    if (nd > GGUF_MAX_DIMS)
        return err_set("%s: %s: %u dimensions (at most %d)", f->path, t->name, nd, GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    size_t n = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims && cur_u64(c, &ne, t->name) != 0) return -1;
        if (ne > (uint64_t)INT64_MAX || __builtin_mul_overflow(n, (size_t)ne, &n))
            return err_set("%s: %s: dimensions overflow", f->path, t->name);
        t->ne[d] = (int64_t)ne;
    }
    t->n_elements = n;
    if (cur_u32(c, &type, t->name) != 0 || cur_u64(c, &t->offset, t->name) != 0) return -1;
    t->type = type;
    if (!quant_type_known(type))
        return err_set("%s: %s: unknown tensor type %u", f->path, t->name, type);
    uint32_t block = quant_block_size(type);
    if (t->ne[0] % block != 0)
        return err_set("%s: %s: ne[0] = %lld is not a multiple of the %s block size %u", f->path,
                       t->name, (long long)t->ne[0], ggml_type_name(type), block);
    t->n_bytes = quant_row_bytes(type, (int64_t)n);
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(gguf_tensor *const *)a)->name, (*(gguf_tensor *const *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(gguf_tensor *const *)a, *y = *(gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

// Data offsets: aligned, inside the file, not overlapping.
static int check_tensor_data(gguf_file *f) {
    size_t avail = f->map.size - (size_t)f->data_offset;
    int64_t n = f->n_tensors;
    gguf_tensor **byoff = xcalloc_or_err((size_t)n, sizeof *byoff, f->path);
    if (!byoff) return -1;
    for (int64_t i = 0; i < n; i++) byoff[i] = &f->tensors[i];
    qsort(byoff, (size_t)n, sizeof *byoff, cmp_tensor_offset);
    int rc = 0;
    uint64_t prev_end = 0;
    for (int64_t i = 0; i < n && rc == 0; i++) {
        gguf_tensor *t = byoff[i];
        if (t->offset % f->alignment != 0)
            rc = err_set("%s: %s: data offset %llu is not a multiple of the alignment %u",
                         f->path, t->name, (unsigned long long)t->offset, f->alignment);
        else if (t->offset > avail || t->n_bytes > avail - t->offset)
            rc = err_set("%s: %s: %s data [%llu, %llu) runs past the end of the file (%zu bytes "
                         "of tensor data; truncated?)",
                         f->path, t->name, ggml_type_name(t->type), (unsigned long long)t->offset,
                         (unsigned long long)(t->offset + t->n_bytes), avail);
        else if (i > 0 && t->offset < prev_end)
            rc = err_set("%s: %s: data at offset %llu overlaps tensor %s", f->path, t->name,
                         (unsigned long long)t->offset, byoff[i - 1]->name);
        else {
            prev_end = t->offset + t->n_bytes;
            t->data = f->map.data + f->data_offset + t->offset;
        }
    }
    free(byoff);
    return rc;
}

static int parse_alignment(gguf_file *f) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find(f, "general.alignment");
    if (!kv) return 0;
    if (kv->type != GGUF_TYPE_UINT32)
        return err_set("%s: general.alignment: expected uint32, found %s", f->path,
                       gguf_type_name(kv->type));
    uint32_t a = le_u32(kv->value);
    if (a == 0 || (a & (a - 1)) != 0)
        return err_set("%s: general.alignment: %u is not a power of two", f->path, a);
    f->alignment = a;
    return 0;
}

static int parse_file(gguf_file *f) {
    cursor c = {f, 0};
    const uint8_t *p = f->map.data;
    if (f->map.size < 4 || memcmp(p, GGUF_MAGIC, 4) != 0)
        return err_set("%s: not a GGUF file (bad magic)", f->path);
    c.pos = 4;
    uint64_t n_tensors, n_kv;
    if (cur_u32(&c, &f->version, "header") != 0) return -1;
    if (f->version == 1) return err_set("%s: GGUF version 1 is unsupported (need 2 or 3)", f->path);
    if (f->version != 2 && f->version != 3)
        return err_set("%s: unsupported GGUF version %u (need 2 or 3; big-endian file?)", f->path,
                       f->version);
    if (cur_u64(&c, &n_tensors, "header") != 0 || cur_u64(&c, &n_kv, "header") != 0) return -1;
    if (parse_kvs(&c, n_kv) != 0) return -1;
    if (parse_alignment(f) != 0) return -1;
    // Each tensor info takes at least 24 bytes.
    if (n_tensors > cur_left(&c) / 24)
        return err_set("%s: tensor count %llu is impossible for the file size (truncated?)", f->path,
                       (unsigned long long)n_tensors);
    f->tensors = xcalloc_or_err((size_t)n_tensors, sizeof *f->tensors, f->path);
    if (!f->tensors) return -1;
    for (uint64_t i = 0; i < n_tensors; i++) {
        f->n_tensors++;
        if (parse_tensor_info(&c, &f->tensors[i], (int64_t)i) != 0) return -1;
    }
    uint64_t off = ((uint64_t)c.pos + f->alignment - 1) / f->alignment * f->alignment;
    if (n_tensors > 0 && off > f->map.size)
        return err_set("%s: tensor data section starts at %llu, past the end of the file (%zu "
                       "bytes; truncated?)",
                       f->path, (unsigned long long)off, f->map.size);
    f->data_offset = off > f->map.size ? f->map.size : off;
    if (check_tensor_data(f) != 0) return -1;
    gguf_tensor **sorted = xcalloc_or_err((size_t)n_tensors, sizeof *sorted, f->path);
    if (!sorted) return -1;
    for (uint64_t i = 0; i < n_tensors; i++) sorted[i] = &f->tensors[i];
    qsort(sorted, (size_t)n_tensors, sizeof *sorted, cmp_tensor_name);
    int rc = 0;
    for (uint64_t i = 1; i < n_tensors && rc == 0; i++)
        if (!strcmp(sorted[i]->name, sorted[i - 1]->name))
            rc = err_set("%s: %s: duplicate tensor name", f->path, sorted[i]->name);
    free(sorted);
    return rc;
}

int gguf_path_is_gguf(const char *path) {
    if (str_has_suffix(path, ".gguf")) return 1;
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    char magic[4];
    int ok = fread(magic, 1, 4, fp) == 4 && !memcmp(magic, GGUF_MAGIC, 4);
    fclose(fp);
    return ok;
}

int gguf_open(gguf_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->map.fd = -1;
    if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path)
        return err_set("%s: path too long", path);
    if (mapped_file_open(&f->map, path) != 0) return -1;
    if (parse_file(f) != 0) {
        gguf_close(f);
        return -1;
    }
    return 0;
}

void gguf_close(gguf_file *f) {
    for (int64_t i = 0; i < f->n_kv; i++) {
        free(f->kvs[i].key);
        free(f->kvs[i].strs);
    }
    free(f->kvs);
    for (int64_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    mapped_file_close(&f->map);
    f->kvs = NULL;
    f->tensors = NULL;
    f->n_kv = f->n_tensors = 0;
}

const gguf_kv *gguf_find(const gguf_file *f, const char *key) {
    for (int64_t i = 0; i < f->n_kv; i++)
        if (!strcmp(f->kvs[i].key, key)) return &f->kvs[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

// ---- typed access ----

static int int_at(const gguf_file *f, const char *key, gguf_type t, const uint8_t *p,
                  int64_t *out) {
    switch (t) {
    case GGUF_TYPE_UINT8: *out = p[0]; return 0;
    case GGUF_TYPE_INT8: *out = (int8_t)p[0]; return 0;
    case GGUF_TYPE_BOOL: *out = p[0] != 0; return 0;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_TYPE_UINT32: *out = le_u32(p); return 0;
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, p, 4); *out = v; return 0; }
    case GGUF_TYPE_INT64: { int64_t v; memcpy(&v, p, 8); *out = v; return 0; }
    case GGUF_TYPE_UINT64: {
        uint64_t v = le_u64(p);
        if (v > (uint64_t)INT64_MAX)
            return err_set("%s: %s: value %llu out of range", f->path, key, (unsigned long long)v);
        *out = (int64_t)v;
        return 0;
    }
    default:
        return err_set("%s: %s: expected an integer, found %s", f->path, key, gguf_type_name(t));
    }
}

static int float_at(const gguf_file *f, const char *key, gguf_type t, const uint8_t *p,
                    double *out) {
    if (t == GGUF_TYPE_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        *out = v;
        return 0;
    }
    if (t == GGUF_TYPE_FLOAT64) {
        memcpy(out, p, 8);
        return 0;
    }
    return err_set("%s: %s: expected a float, found %s", f->path, key, gguf_type_name(t));
}

static const gguf_kv *need(const gguf_file *f, const char *key) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) err_set("%s: %s: missing metadata key", f->path, key);
    return kv;
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = need(f, key);
    if (!kv) return -1;
    if (kv->type == GGUF_TYPE_BOOL)
        return err_set("%s: %s: expected an integer, found bool", f->path, key);
    return int_at(f, key, kv->type, kv->value, out);
}

int gguf_get_float(const gguf_file *f, const char *key, double *out) {
    const gguf_kv *kv = need(f, key);
    return kv ? float_at(f, key, kv->type, kv->value, out) : -1;
}

int gguf_get_bool(const gguf_file *f, const char *key, int *out) {
    const gguf_kv *kv = need(f, key);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_BOOL)
        return err_set("%s: %s: expected bool, found %s", f->path, key, gguf_type_name(kv->type));
    *out = kv->value[0] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, const char **s, size_t *len) {
    const gguf_kv *kv = need(f, key);
    if (!kv) return -1;
    if (kv->type != GGUF_TYPE_STRING)
        return err_set("%s: %s: expected a string, found %s", f->path, key,
                       gguf_type_name(kv->type));
    *len = (size_t)le_u64(kv->value);
    *s = (const char *)kv->value + 8;
    return 0;
}

int gguf_get_cstr(const gguf_file *f, const char *key, char *buf, size_t size) {
    const char *s;
    size_t len;
    if (gguf_get_str(f, key, &s, &len) != 0) return -1;
    if (len >= size || memchr(s, 0, len))
        return err_set("%s: %s: string too long or contains NUL", f->path, key);
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, const gguf_kv **kv, gguf_type *elem_type,
                 uint64_t *n) {
    const gguf_kv *a = need(f, key);
    if (!a) return -1;
    if (a->type != GGUF_TYPE_ARRAY)
        return err_set("%s: %s: expected an array, found %s", f->path, key,
                       gguf_type_name(a->type));
    *kv = a;
    *elem_type = a->elem_type;
    *n = a->n;
    return 0;
}

static int check_index(const gguf_file *f, const gguf_kv *kv, uint64_t i) {
    if (kv->type != GGUF_TYPE_ARRAY)
        return err_set("%s: %s: not an array", f->path, kv->key);
    if (i >= kv->n)
        return err_set("%s: %s: index %llu out of range (%llu elements)", f->path, kv->key,
                       (unsigned long long)i, (unsigned long long)kv->n);
    return 0;
}

int gguf_arr_int(const gguf_file *f, const gguf_kv *kv, uint64_t i, int64_t *out) {
    if (check_index(f, kv, i) != 0) return -1;
    size_t sz = scalar_size(kv->elem_type);
    if (!sz || kv->elem_type == GGUF_TYPE_FLOAT32 || kv->elem_type == GGUF_TYPE_FLOAT64)
        return err_set("%s: %s: expected integer elements, found %s", f->path, kv->key,
                       gguf_type_name(kv->elem_type));
    return int_at(f, kv->key, kv->elem_type, kv->value + i * sz, out);
}

int gguf_arr_float(const gguf_file *f, const gguf_kv *kv, uint64_t i, double *out) {
    if (check_index(f, kv, i) != 0) return -1;
    size_t sz = scalar_size(kv->elem_type);
    return float_at(f, kv->key, kv->elem_type, kv->value + i * (sz ? sz : 1), out);
}

int gguf_arr_str(const gguf_file *f, const gguf_kv *kv, uint64_t i, const char **s, size_t *len) {
    if (check_index(f, kv, i) != 0) return -1;
    if (kv->elem_type != GGUF_TYPE_STRING)
        return err_set("%s: %s: expected string elements, found %s", f->path, kv->key,
                       gguf_type_name(kv->elem_type));
    *len = (size_t)le_u64(kv->strs[i]);
    *s = (const char *)kv->strs[i] + 8;
    return 0;
}

int gguf_tensor_to_f32(const gguf_file *f, const gguf_tensor *t, float *out) {
    if (quant_dequantize_row(t->type, t->data, out, (int64_t)t->n_elements) != 0)
        return err_prefix("%s: %s", f->path, t->name);
    return 0;
}
