#include "formats/gguf_write.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/strbuf.h"
#include "formats/gguf.h"

#define GGUF_WRITE_VERSION 3

void gguf_writer_init(gguf_writer *w) { memset(w, 0, sizeof *w); }

void gguf_writer_free(gguf_writer *w) {
    for (int64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    free(w->kv);
    memset(w, 0, sizeof *w);
}

static void put(gguf_writer *w, const void *p, size_t n) {
    if (w->oom) return;
    uint8_t *grown = vec_grow(w->kv, &w->kv_cap, w->kv_len + n, 1);
    if (!grown) {
        w->oom = 1;
        return;
    }
    w->kv = grown;
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
}

// GGUF is little-endian; medtune only builds on little-endian hosts (x86-64, arm64), so
// integers and floats are written as their in-memory bytes.
static void put_u32(gguf_writer *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(gguf_writer *w, uint64_t v) { put(w, &v, 8); }

static void put_str(gguf_writer *w, const char *s) {
    size_t n = strlen(s);
    put_u64(w, n);
    put(w, s, n);
}

static void put_key(gguf_writer *w, const char *key, gguf_type type) {
    put_str(w, key);
    put_u32(w, (uint32_t)type);
    w->n_kv++;
}

void gguf_writer_add_u32(gguf_writer *w, const char *key, uint32_t v) {
    put_key(w, key, GGUF_TYPE_UINT32);
    put(w, &v, 4);
}

void gguf_writer_add_i32(gguf_writer *w, const char *key, int32_t v) {
    put_key(w, key, GGUF_TYPE_INT32);
    put(w, &v, 4);
}

void gguf_writer_add_u64(gguf_writer *w, const char *key, uint64_t v) {
    put_key(w, key, GGUF_TYPE_UINT64);
    put(w, &v, 8);
}

void gguf_writer_add_f32(gguf_writer *w, const char *key, float v) {
    put_key(w, key, GGUF_TYPE_FLOAT32);
    put(w, &v, 4);
}

void gguf_writer_add_bool(gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    put_key(w, key, GGUF_TYPE_BOOL);
    put(w, &b, 1);
}

void gguf_writer_add_str(gguf_writer *w, const char *key, const char *v) {
    put_key(w, key, GGUF_TYPE_STRING);
    put_str(w, v);
}

static size_t scalar_size(gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64:
    case GGUF_TYPE_INT64:
    case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

void gguf_writer_add_arr(gguf_writer *w, const char *key, gguf_type elem_type, const void *data,
                         uint64_t n) {
    size_t size = scalar_size(elem_type);
    if (!size) {
        // A caller bug, not bad input: make the write fail rather than emit a corrupt file.
        w->oom = 2;
        return;
    }
    put_key(w, key, GGUF_TYPE_ARRAY);
    put_u32(w, (uint32_t)elem_type);
    put_u64(w, n);
    put(w, data, (size_t)n * size);
}

void gguf_writer_add_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n) {
    put_key(w, key, GGUF_TYPE_ARRAY);
    put_u32(w, GGUF_TYPE_STRING);
    put_u64(w, n);
    for (uint64_t i = 0; i < n; i++) put_str(w, v[i]);
}

void gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv) {
    put_key(w, kv->key, kv->type);
    if (kv->type == GGUF_TYPE_STRING) {
        uint64_t len;
        memcpy(&len, kv->value, 8);
        put(w, kv->value, 8 + (size_t)len);
        return;
    }
    if (kv->type != GGUF_TYPE_ARRAY) {
        put(w, kv->value, scalar_size(kv->type));
        return;
    }
    put_u32(w, (uint32_t)kv->elem_type);
    put_u64(w, kv->n);
    if (kv->elem_type != GGUF_TYPE_STRING) {
        put(w, kv->value, (size_t)kv->n * scalar_size(kv->elem_type));
        return;
    }
    // The parser checked every element: they lie back to back from strs[0] on.
    for (uint64_t i = 0; i < kv->n; i++) {
        uint64_t len;
        memcpy(&len, kv->strs[i], 8);
        put(w, kv->strs[i], 8 + (size_t)len);
    }
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, int n_dims, const int64_t *ne,
                           uint32_t type, const void *data) {
    if (!quant_type_known(type)) return err_set("%s: unknown tensor type %u", name, type);
    if (!data && !w->fetch) return err_set("%s: no tensor data and no fetch callback", name);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return err_set("%s: %d dimensions (1..%d)", name, n_dims, GGUF_MAX_DIMS);
    if (ne[0] % quant_block_size(type) != 0)
        return err_set("%s: ne[0] = %lld is not a multiple of the %s block size %u", name,
                       (long long)ne[0], ggml_type_name(type), quant_block_size(type));
    size_t count = 1;
    for (int d = 0; d < n_dims; d++)
        if (ne[d] <= 0 || __builtin_mul_overflow(count, (size_t)ne[d], &count) ||
            count > (size_t)INT64_MAX / 4)
            return err_set("%s: invalid dimension ne[%d] = %lld", name, d, (long long)ne[d]);
    size_t n = quant_row_bytes(type, (int64_t)count);
    gguf_write_tensor *grown =
        vec_grow(w->tensors, &w->cap_tensors, (size_t)w->n_tensors + 1, sizeof *grown);
    if (!grown) return err_set("%s: out of memory", name);
    w->tensors = grown;
    gguf_write_tensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return err_set("%s: out of memory", name);
    t->n_dims = n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->type = type;
    t->data = data;
    t->n_bytes = n;
    w->n_tensors++;
    return 0;
}

static uint64_t align_up(uint64_t x) {
    return (x + GGUF_DEFAULT_ALIGNMENT - 1) / GGUF_DEFAULT_ALIGNMENT * GGUF_DEFAULT_ALIGNMENT;
}

// Walks the serialized KVs once to find a duplicate key (llama.cpp refuses such files).
static int check_duplicate_keys(const gguf_writer *w, const char *path) {
    const uint8_t **keys = calloc((size_t)w->n_kv + 1, sizeof *keys);
    uint64_t *lens = calloc((size_t)w->n_kv + 1, sizeof *lens);
    int rc = 0;
    if (!keys || !lens) {
        rc = err_set("%s: out of memory", path);
        goto done;
    }
    size_t at = 0;
    for (int64_t i = 0; i < w->n_kv; i++) {
        memcpy(&lens[i], w->kv + at, 8);
        keys[i] = w->kv + at + 8;
        at += 8 + lens[i];
        uint32_t type;
        memcpy(&type, w->kv + at, 4);
        at += 4;
        if (type == GGUF_TYPE_STRING) {
            uint64_t n;
            memcpy(&n, w->kv + at, 8);
            at += 8 + n;
        } else if (type == GGUF_TYPE_ARRAY) {
            uint32_t et;
            uint64_t n;
            memcpy(&et, w->kv + at, 4);
            memcpy(&n, w->kv + at + 4, 8);
            at += 12;
            if (et == GGUF_TYPE_STRING)
                for (uint64_t k = 0; k < n; k++) {
                    uint64_t sl;
                    memcpy(&sl, w->kv + at, 8);
                    at += 8 + sl;
                }
            else
                at += n * scalar_size((gguf_type)et);
        } else {
            at += scalar_size((gguf_type)type);
        }
        for (int64_t k = 0; k < i && !rc; k++)
            if (lens[k] == lens[i] && !memcmp(keys[k], keys[i], lens[i]))
                rc = err_set("%s: duplicate metadata key '%.*s'", path, (int)lens[i],
                             (const char *)keys[i]);
        if (rc) break;
    }
done:
    free(keys);
    free(lens);
    return rc;
}

int gguf_writer_write(gguf_writer *w, const char *path) {
    if (w->oom == 2) return err_set("%s: invalid metadata array element type", path);
    if (w->oom) return err_set("%s: out of memory building the metadata", path);
    if (check_duplicate_keys(w, path)) return -1;
    for (int64_t i = 0; i < w->n_tensors; i++)
        for (int64_t k = 0; k < i; k++)
            if (!strcmp(w->tensors[i].name, w->tensors[k].name))
                return err_set("%s: %s: duplicate tensor name", path, w->tensors[i].name);

    // Header, KVs and tensor infos go into one buffer (small); data is streamed after it.
    gguf_writer h;
    gguf_writer_init(&h);
    put(&h, GGUF_MAGIC, 4);
    put_u32(&h, GGUF_WRITE_VERSION);
    put_u64(&h, (uint64_t)w->n_tensors);
    put_u64(&h, (uint64_t)w->n_kv);
    put(&h, w->kv, w->kv_len);
    uint64_t offset = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        const gguf_write_tensor *t = &w->tensors[i];
        put_str(&h, t->name);
        put_u32(&h, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) put_u64(&h, (uint64_t)t->ne[d]);
        put_u32(&h, t->type);
        put_u64(&h, offset);
        offset = align_up(offset + t->n_bytes);
    }
    static const uint8_t zeros[GGUF_DEFAULT_ALIGNMENT];
    size_t pad = (size_t)(align_up(h.kv_len) - h.kv_len);
    put(&h, zeros, pad);
    if (h.oom) {
        gguf_writer_free(&h);
        return err_set("%s: out of memory building the header", path);
    }
    atomic_writer aw;
    if (atomic_writer_open(&aw, path)) {
        gguf_writer_free(&h);
        return -1;
    }
    int rc = atomic_writer_write(&aw, h.kv, h.kv_len);
    gguf_writer_free(&h);
    for (int64_t i = 0; i < w->n_tensors && !rc; i++) {
        const gguf_write_tensor *t = &w->tensors[i];
        const void *data = t->data ? t->data : w->fetch(w->fetch_ctx, i);
        if (!data) {
            rc = -1;
            break;
        }
        rc = atomic_writer_write(&aw, data, t->n_bytes);
        size_t tail = (size_t)(align_up(t->n_bytes) - t->n_bytes);
        if (!rc && tail) rc = atomic_writer_write(&aw, zeros, tail);
    }
    if (rc) {
        atomic_writer_abort(&aw);
        return -1;
    }
    return atomic_writer_commit(&aw);
}
