#include "export/hf_shards.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"

static uint64_t tensor_bytes(const st_write_tensor *t) {
    uint64_t n = st_dtype_size(t->dtype);
    for (int d = 0; d < t->n_dims; d++) n *= (uint64_t)t->shape[d];
    return n;
}

// One shard's view of the caller's tensors: shard index -> caller index.
typedef struct {
    const int *map;
    st_fetch_fn fetch;
    void *ctx;
} shard_ctx;

static const void *shard_fetch(void *ctx, int index) {
    const shard_ctx *s = ctx;
    return s->fetch(s->ctx, s->map[index]);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const st_write_tensor *const *)a)->name,
                  (*(const st_write_tensor *const *)b)->name);
}

static int write_index(const char *dir, const st_write_tensor *tensors, int n, const int *shard,
                       int n_shards, uint64_t total) {
    cJSON *j = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(j, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    cJSON *map = cJSON_AddObjectToObject(j, "weight_map");
    // transformers writes the weight map sorted by tensor name.
    const st_write_tensor **order = malloc((size_t)n * sizeof *order);
    if (!order) {
        cJSON_Delete(j);
        return err_set("%s: out of memory", dir);
    }
    for (int i = 0; i < n; i++) order[i] = &tensors[i];
    qsort(order, (size_t)n, sizeof *order, cmp_tensor_name);
    for (int i = 0; i < n; i++) {
        char file[64];
        snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors",
                 shard[order[i] - tensors] + 1, n_shards);
        cJSON_AddStringToObject(map, order[i]->name, file);
    }
    free(order);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    char path[4096];
    int rc = !text ? err_set("%s: out of memory", dir)
                   : path_join(path, sizeof path, dir, "model.safetensors.index.json");
    if (!rc) rc = file_write_atomic(path, text, strlen(text));
    free(text);
    return rc;
}

int hf_shards_write(const char *dir, const st_write_tensor *tensors, int n, const st_meta *meta,
                    int n_meta, uint64_t max_shard_bytes, st_fetch_fn fetch, void *ctx,
                    int *n_shards) {
    int *shard = malloc((size_t)(n ? n : 1) * sizeof *shard);
    int *map = malloc((size_t)(n ? n : 1) * sizeof *map);
    st_write_tensor *sub = malloc((size_t)(n ? n : 1) * sizeof *sub);
    int rc = 0;
    if (!shard || !map || !sub) {
        rc = err_set("%s: out of memory", dir);
        goto done;
    }
    // Greedy packing in order; a tensor larger than the limit gets a shard of its own.
    uint64_t total = 0, in_shard = 0;
    int ns = 0;
    for (int i = 0; i < n; i++) {
        uint64_t b = tensor_bytes(&tensors[i]);
        if (i == 0 || (in_shard > 0 && in_shard + b > max_shard_bytes)) {
            ns++;
            in_shard = 0;
        }
        shard[i] = ns - 1;
        in_shard += b;
        total += b;
    }
    if (ns == 0) ns = 1;
    for (int s = 0; s < ns && !rc; s++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (shard[i] == s) {
                map[k] = i;
                sub[k++] = tensors[i];
            }
        char name[64], path[4096];
        if (ns == 1) snprintf(name, sizeof name, "model.safetensors");
        else snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, ns);
        shard_ctx sc = {map, fetch, ctx};
        rc = path_join(path, sizeof path, dir, name);
        if (!rc) rc = safetensors_write_streamed(path, sub, k, meta, n_meta, shard_fetch, &sc);
    }
    if (!rc && ns > 1) rc = write_index(dir, tensors, n, shard, ns, total);
    if (!rc) *n_shards = ns;
done:
    free(shard);
    free(map);
    free(sub);
    return rc;
}
