// libFuzzer harness: the safetensors header and the sharded-model index.
// The first input byte picks the parser, the rest is the file:
//   even  a .safetensors file for safetensors_open; every tensor it accepts is then found by
//         name and (when small) converted to fp32, which reads the whole data range the
//         header claims, so a header whose offsets escape the file is caught by ASan
//   odd   model.safetensors.index.json of a Hugging Face directory for model_load, next to
//         a valid config.json and two valid shards of the tiny model (written once at start)
// Both entry points take paths: the input is written to a scratch file (fuzz_common.h).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "tests/fuzz/fuzz_common.h"

static char index_dir[4096];

// The tiny model's tensors split over two shard files, as transformers writes large models.
static void index_dir_init(void) {
    char tiny[4096], src[4096], dst[4096], *cfg;
    size_t cfg_len;
    fuzz_tiny_model(tiny, sizeof tiny, "tiny");
    fuzz_path(index_dir, sizeof index_dir, "sharded");
    if (dir_create(index_dir) != 0) fuzz_fail("%s", err_msg());
    if (path_join(src, sizeof src, tiny, "config.json") || file_read_all(src, &cfg, &cfg_len) ||
        path_join(dst, sizeof dst, index_dir, "config.json") || file_write_atomic(dst, cfg, cfg_len))
        fuzz_fail("%s", err_msg());
    free(cfg);
    st_file f;
    if (path_join(src, sizeof src, tiny, "model.safetensors") || safetensors_open(&f, src))
        fuzz_fail("%s", err_msg());
    st_write_tensor *w = calloc((size_t)f.n_tensors, sizeof *w);
    if (!w) fuzz_fail("out of memory");
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        w[i] = (st_write_tensor){.name = t->name, .dtype = t->dtype, .n_dims = t->n_dims, .data = t->data};
        memcpy(w[i].shape, t->shape, sizeof t->shape);
    }
    int half = f.n_tensors / 2;
    if (path_join(dst, sizeof dst, index_dir, "model-00001-of-00002.safetensors") ||
        safetensors_write(dst, w, half, NULL, 0) ||
        path_join(dst, sizeof dst, index_dir, "model-00002-of-00002.safetensors") ||
        safetensors_write(dst, w + half, f.n_tensors - half, NULL, 0))
        fuzz_fail("%s", err_msg());
    free(w);
    safetensors_close(&f);
}

static void fuzz_header(const uint8_t *data, size_t size) {
    char path[4096];
    fuzz_write(path, sizeof path, "input.safetensors", data, size);
    st_file f;
    if (safetensors_open(&f, path) != 0) {
        fuzz_expect_error("safetensors_open");
        return;
    }
    for (int i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = &f.tensors[i];
        if (safetensors_find(&f, t->name) != t) fuzz_fail("safetensors_find misses '%s'", t->name);
        if (t->n_bytes != t->n_elements * st_dtype_size(t->dtype))
            fuzz_fail("'%s': %zu bytes for %zu elements", t->name, t->n_bytes, t->n_elements);
        if (t->data < f.map.data || (size_t)(t->data - f.map.data) + t->n_bytes > f.map.size)
            fuzz_fail("'%s': data outside the file", t->name);
        if (t->n_elements > (1u << 16)) continue;
        float *out = malloc((t->n_elements ? t->n_elements : 1) * sizeof *out);
        if (!out) fuzz_fail("out of memory");
        if (st_tensor_to_f32(&f, t, out) != 0) fuzz_expect_error("st_tensor_to_f32");
        free(out);
    }
    for (int i = 0; i < f.n_meta; i++)
        if (safetensors_metadata(&f, f.meta[i].key) == NULL)
            fuzz_fail("metadata key '%s' not found", f.meta[i].key);
    safetensors_close(&f);
}

static void fuzz_index(const uint8_t *data, size_t size) {
    char path[4096];
    if (!index_dir[0]) index_dir_init();
    if (path_join(path, sizeof path, index_dir, "model.safetensors.index.json")) fuzz_fail("path");
    fuzz_write_path(path, data, size);
    model m;
    if (model_load(&m, index_dir) != 0) {
        fuzz_expect_error("model_load");
        return;
    }
    model_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    err_clear();
    if (data[0] & 1)
        fuzz_index(data + 1, size - 1);
    else
        fuzz_header(data + 1, size - 1);
    return 0;
}
