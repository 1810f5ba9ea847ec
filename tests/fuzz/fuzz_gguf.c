// libFuzzer harness: GGUF metadata and tensor infos. The input is a .gguf file (written to a
// scratch file: gguf_open maps a path). Once it opens, every key/value is read back through
// the typed getters and array accessors, every tensor is found by name and, when small,
// dequantized (which touches the whole data range its info claims), and the model config is
// derived from the metadata as `medtune info` and model loading do.
#include <stdint.h>
#include <stdlib.h>

#include "common/error.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "model/model_load.h"
#include "tests/fuzz/fuzz_common.h"

// Reads one key the way the loaders do; a type mismatch is an error with a message.
static void read_kv(const gguf_file *f, const gguf_kv *kv) {
    int64_t i;
    double d;
    int b;
    const char *s;
    size_t len;
    char buf[256];
    int rc = 0;
    switch (kv->type) {
    case GGUF_TYPE_FLOAT32:
    case GGUF_TYPE_FLOAT64: rc = gguf_get_float(f, kv->key, &d); break;
    case GGUF_TYPE_BOOL: rc = gguf_get_bool(f, kv->key, &b); break;
    case GGUF_TYPE_STRING:
        rc = gguf_get_str(f, kv->key, &s, &len);
        if (gguf_get_cstr(f, kv->key, buf, sizeof buf) != 0) fuzz_expect_error("gguf_get_cstr");
        break;
    case GGUF_TYPE_ARRAY: {
        const gguf_kv *arr;
        gguf_type et;
        uint64_t n;
        rc = gguf_get_arr(f, kv->key, &arr, &et, &n);
        // The first and last elements are enough to catch element offsets past the file.
        for (uint64_t k = 0; rc == 0 && k < n && k < 4; k++) {
            uint64_t at = k < 2 ? k : n - 1 - (k - 2);
            int r = et == GGUF_TYPE_STRING ? gguf_arr_str(f, arr, at, &s, &len)
                    : et == GGUF_TYPE_FLOAT32 || et == GGUF_TYPE_FLOAT64 ? gguf_arr_float(f, arr, at, &d)
                    : et == GGUF_TYPE_ARRAY ? 0
                    : gguf_arr_int(f, arr, at, &i);
            if (r != 0) fuzz_expect_error("gguf_arr_*");
        }
        if (gguf_arr_int(f, arr, n, &i) == 0) fuzz_fail("%s: index %llu past the end accepted", kv->key,
                                                        (unsigned long long)n);
        break;
    }
    default: rc = gguf_get_int(f, kv->key, &i); break;
    }
    if (rc != 0) fuzz_expect_error("gguf_get_*");
    if (gguf_find(f, kv->key) == NULL) fuzz_fail("gguf_find misses '%s'", kv->key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[4096];
    err_clear();
    fuzz_write(path, sizeof path, "input.gguf", data, size);
    gguf_file f;
    if (gguf_open(&f, path) != 0) {
        fuzz_expect_error("gguf_open");
        return 0;
    }
    for (int64_t k = 0; k < f.n_kv; k++) read_kv(&f, &f.kvs[k]);
    for (int64_t k = 0; k < f.n_tensors; k++) {
        const gguf_tensor *t = &f.tensors[k];
        if (!gguf_find_tensor(&f, t->name)) fuzz_fail("gguf_find_tensor misses '%s'", t->name);
        if (t->data < f.map.data || (size_t)(t->data - f.map.data) + t->n_bytes > f.map.size)
            fuzz_fail("'%s': data outside the file", t->name);
        if (t->n_elements > (1u << 16)) continue;
        float *out = malloc((t->n_elements ? t->n_elements : 1) * sizeof *out);
        if (!out) fuzz_fail("out of memory");
        if (gguf_tensor_to_f32(&f, t, out) != 0) fuzz_expect_error("gguf_tensor_to_f32");
        free(out);
    }
    gguf_close(&f);
    model_config cfg;
    if (model_config_load_gguf(&cfg, path) != 0) fuzz_expect_error("model_config_load_gguf");
    return 0;
}
