// Merge driver and the Hugging Face base path (GGUF bases: merge_gguf.c).
#include <cblas.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "export/export_source.h"
#include "export/hf_shards.h"
#include "export/merge_impl.h"
#include "checkpoints/peft.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/str.h"
#include "formats/halfconv.h"

// ---- helpers shared with merge_gguf.c ----

// gpt2: "transformer.h.N.attn.c_attn.weight" (or without "transformer.", as the original
// checkpoints), the module names of lora_arch_target_name.
static int gpt2_target_of(const lora_adapter *a, const char *hf_name, int *layer, lora_target *t) {
    const char *p = hf_name;
    if (!strncmp(p, "transformer.", 12)) p += 12;
    if (strncmp(p, "h.", 2)) return 0;
    char *end;
    long l = strtol(p + 2, &end, 10);
    if (end == p + 2 || *end != '.' || l < 0 || l >= a->n_layers) return 0;
    for (int k = 0; k < LORA_N_TARGETS; k++) {
        const char *name = lora_arch_target_name(a->arch, k);
        if (!name || !lora_enabled(a, k)) continue;
        char want[96];
        snprintf(want, sizeof want, ".%s.%s.weight", k == LORA_QKV || k == LORA_O ? "attn" : "mlp",
                 name);
        if (!strcmp(end, want)) {
            *layer = (int)l;
            *t = (lora_target)k;
            return 1;
        }
    }
    return 0;
}

int merge_target_of(const lora_adapter *a, const char *hf_name, int *layer, lora_target *t) {
    if (a->arch == MODEL_ARCH_GPT2) return gpt2_target_of(a, hf_name, layer, t);
    const char *prefix = "model.layers.";
    size_t pl = strlen(prefix);
    if (strncmp(hf_name, prefix, pl)) return 0;
    char *end;
    long l = strtol(hf_name + pl, &end, 10);
    if (end == hf_name + pl || *end != '.' || l < 0 || l >= a->n_layers) return 0;
    for (int k = 0; k < LORA_N_TARGETS; k++) {
        char want[96];
        snprintf(want, sizeof want, ".%s.%s.weight", lora_target_module(k), LORA_TARGET_NAMES[k]);
        if (!strcmp(end, want) && lora_enabled(a, k)) {
            *layer = (int)l;
            *t = (lora_target)k;
            return 1;
        }
    }
    return 0;
}

void merge_add_delta_rows(float *W, const lora_adapter *a, int layer, lora_target t) {
    const lora_slot *s = &a->slots[t];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->out, s->in, a->cfg.r, a->scale,
                lora_B(a, layer, t), a->cfg.r, lora_A(a, layer, t), s->in, 1.0f, W, s->in);
}

void merge_add_delta(float *W, const lora_adapter *a, int layer, lora_target t) {
    if (a->arch != MODEL_ARCH_GPT2) {
        merge_add_delta_rows(W, a, layer, t);
        return;
    }
    // HF stores gpt2's Conv1D weights [in, out]: W += scale (B A)^T = scale A^T B^T, as PEFT
    // merges with fan_in_fan_out.
    const lora_slot *s = &a->slots[t];
    int r = a->cfg.r;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, s->in, s->out, r, a->scale,
                lora_A(a, layer, t), s->in, lora_B(a, layer, t), r, 1.0f, W, s->out);
}

void merge_f32_to_dtype(void *dst, const float *src, size_t n, st_dtype dtype) {
    if (dtype == ST_F32) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    uint16_t *h = dst;
    if (dtype == ST_F16)
        for (size_t i = 0; i < n; i++) h[i] = f32_to_fp16(src[i]);
    else
        for (size_t i = 0; i < n; i++) h[i] = f32_to_bf16(src[i]);
}

void merge_release_pages(const void *p, size_t n) {
    if (!p || !n) return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t begin = ((uintptr_t)p + page - 1) / page * page;
    uintptr_t end = ((uintptr_t)p + n) / page * page;
    // Pages shared with a neighbouring tensor stay; a failure only costs memory.
    if (end > begin) (void)madvise((void *)begin, end - begin, MADV_DONTNEED);
}

void merge_report_tensors(merge_report *rep, const st_write_tensor *out, int n) {
    // Output dtypes in first-seen order, e.g. "BF16" or "F32+I64".
    char *d = rep->dtypes;
    d[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *name = st_dtype_name(out[i].dtype);
        if (!strstr(d, name) && strlen(d) + strlen(name) + 2 < sizeof rep->dtypes) {
            if (*d) strcat(d, "+");
            strcat(d, name);
        }
        uint64_t b = st_dtype_size(out[i].dtype);
        for (int k = 0; k < out[i].n_dims; k++) b *= (uint64_t)out[i].shape[k];
        rep->bytes += b;
    }
    rep->n_tensors = n;
}

int merge_write_text(const merge_job *job, const char *name, const char *text) {
    char path[4096];
    if (path_join(path, sizeof path, job->out_dir, name)) return -1;
    return file_write_atomic(path, text, strlen(text));
}

// ---- Hugging Face base ----

typedef struct {
    st_file *files;
    int n_files;
    st_write_tensor *out;  // one per input tensor, in output order
    const st_file **src_file;
    const st_tensor **src;
    int n;
    float *f32;     // scratch: the merged tensor in fp32
    void *conv;     // scratch: the merged tensor in its dtype
    const st_tensor *last;  // input whose pages are released at the next fetch
    const merge_job *job;
} hf_merge;

static int hf_open_inputs(hf_merge *h, const char *dir) {
    char single[4096], index[4096];
    if (path_join(single, sizeof single, dir, "model.safetensors") ||
        path_join(index, sizeof index, dir, "model.safetensors.index.json"))
        return -1;
    char **names = NULL;
    int n = 0, rc = 0;
    cJSON *j = NULL;
    if (path_exists(single)) {
        names = malloc(sizeof *names);
        if (names && (names[0] = strdup("model.safetensors"))) n = 1;
        else rc = err_set("%s: out of memory", dir);
    } else if (path_exists(index)) {
        char *text;
        if (file_read_all(index, &text, NULL)) return -1;
        j = cJSON_Parse(text);
        free(text);
        const cJSON *map = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
        if (!cJSON_IsObject(map)) rc = err_set("%s: weight_map: missing or not an object", index);
        int cap = cJSON_GetArraySize(map);
        names = calloc((size_t)(cap ? cap : 1), sizeof *names);
        if (!rc && !names) rc = err_set("%s: out of memory", index);
        for (const cJSON *e = map ? map->child : NULL; e && !rc; e = e->next) {
            if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !*e->valuestring) {
                rc = err_set("%s: weight_map: %s: invalid shard file name", index, e->string);
                break;
            }
            int seen = 0;
            for (int i = 0; i < n && !seen; i++) seen = !strcmp(names[i], e->valuestring);
            if (!seen && !(names[n++] = strdup(e->valuestring)))
                rc = err_set("%s: out of memory", index);
        }
    } else {
        rc = err_set("%s: no model.safetensors or model.safetensors.index.json", dir);
    }
    cJSON_Delete(j);
    if (!rc && !(h->files = calloc((size_t)(n ? n : 1), sizeof *h->files)))
        rc = err_set("%s: out of memory", dir);
    for (int i = 0; i < n && !rc; i++) {
        char path[4096];
        rc = path_join(path, sizeof path, dir, names[i]);
        if (!rc) rc = safetensors_open(&h->files[i], path);
        if (!rc) h->n_files++;
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

static void hf_merge_free(hf_merge *h) {
    for (int i = 0; i < h->n_files; i++) safetensors_close(&h->files[i]);
    free(h->files);
    free(h->out);
    free(h->src_file);
    free(h->src);
    free(h->f32);
    free(h->conv);
}

static const void *hf_fetch(void *ctx, int i) {
    hf_merge *h = ctx;
    if (h->last) merge_release_pages(h->last->data, h->last->n_bytes);
    const st_tensor *t = h->src[i];
    h->last = t;
    int layer;
    lora_target target;
    if (!merge_target_of(h->job->a, t->name, &layer, &target)) return t->data;
    if (st_tensor_to_f32(h->src_file[i], t, h->f32)) return NULL;
    merge_add_delta(h->f32, h->job->a, layer, target);
    if (t->dtype == ST_F32) return h->f32;
    merge_f32_to_dtype(h->conv, h->f32, t->n_elements, t->dtype);
    return h->conv;
}

static int cmp_st_meta(const void *a, const void *b) {
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

// The union of the inputs' __metadata__ (tied-weight aliases among them), with "format": "pt".
static st_meta *hf_metadata(const hf_merge *h, int *n_out) {
    int cap = 1;
    for (int f = 0; f < h->n_files; f++) cap += h->files[f].n_meta;
    st_meta *m = calloc((size_t)cap, sizeof *m);
    if (!m) return NULL;
    int n = 0;
    m[n++] = (st_meta){"format", "pt"};
    for (int f = 0; f < h->n_files; f++)
        for (int k = 0; k < h->files[f].n_meta; k++) {
            const st_meta *e = &h->files[f].meta[k];
            int seen = 0;
            for (int i = 0; i < n && !seen; i++) seen = !strcmp(m[i].key, e->key);
            if (!seen) m[n++] = *e;
        }
    qsort(m, (size_t)n, sizeof *m, cmp_st_meta);
    *n_out = n;
    return m;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

// Files copied from a Hugging Face base when present.
static const char *const HF_COPIED_FILES[] = {
    "config.json",          "generation_config.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "added_tokens.json",    "vocab.json",             "merges.txt",
};

int merge_hf(const merge_job *job) {
    hf_merge h = {.job = job};
    int rc = hf_open_inputs(&h, job->model_path);
    int total = 0;
    for (int f = 0; f < h.n_files; f++) total += h.files[f].n_tensors;
    if (!rc) {
        h.out = calloc((size_t)(total ? total : 1), sizeof *h.out);
        h.src_file = calloc((size_t)(total ? total : 1), sizeof *h.src_file);
        h.src = calloc((size_t)(total ? total : 1), sizeof *h.src);
        if (!h.out || !h.src_file || !h.src) rc = err_set("%s: out of memory", job->model_path);
    }
    for (int f = 0; f < h.n_files && !rc; f++)
        for (int k = 0; k < h.files[f].n_tensors; k++) h.src[h.n++] = &h.files[f].tensors[k];
    // Output in name order, as save_pretrained's state dict of a Llama model is close to.
    if (!rc) qsort(h.src, (size_t)h.n, sizeof *h.src, cmp_tensor_name);
    size_t max_elems = 0;
    int found[LORA_N_TARGETS] = {0};
    for (int i = 0; i < h.n && !rc; i++) {
        const st_tensor *t = h.src[i];
        if (i && !strcmp(t->name, h.src[i - 1]->name)) {
            rc = err_set("%s: %s: tensor stored twice", job->model_path, t->name);
            break;
        }
        for (int f = 0; f < h.n_files; f++)
            if (t >= h.files[f].tensors && t < h.files[f].tensors + h.files[f].n_tensors)
                h.src_file[i] = &h.files[f];
        h.out[i] = (st_write_tensor){.name = t->name, .dtype = t->dtype, .n_dims = t->n_dims};
        memcpy(h.out[i].shape, t->shape, sizeof t->shape);
        int layer;
        lora_target tg;
        if (!merge_target_of(job->a, t->name, &layer, &tg)) continue;
        const lora_slot *s = &job->a->slots[tg];
        // gpt2's Conv1D weights are stored [in, out].
        const int conv1d = job->a->arch == MODEL_ARCH_GPT2;
        const int rows = conv1d ? s->in : s->out, cols = conv1d ? s->out : s->in;
        if (!st_dtype_is_float(t->dtype) || t->n_dims != 2 || t->shape[0] != rows ||
            t->shape[1] != cols) {
            rc = err_set("%s: %s: %s [%lld, %lld] does not match the adapter's [%d, %d] float "
                         "projection",
                         h.src_file[i]->path, t->name, st_dtype_name(t->dtype),
                         (long long)t->shape[0], t->n_dims > 1 ? (long long)t->shape[1] : 0LL,
                         rows, cols);
            break;
        }
        found[tg]++;
        if (t->n_elements > max_elems) max_elems = t->n_elements;
        job->rep->n_merged++;
    }
    for (int t = 0; t < LORA_N_TARGETS && !rc; t++)
        if (lora_enabled(job->a, t) && found[t] != job->a->n_layers)
            rc = err_set("%s: the adapter changes %s in %d layers, the model has %d such weights",
                         job->model_path, LORA_TARGET_NAMES[t], job->a->n_layers, found[t]);
    if (!rc && !((h.f32 = malloc(max_elems * sizeof(float))) &&
                 (h.conv = malloc(max_elems * sizeof(uint16_t)))))
        rc = err_set("%s: out of memory for a %zu-element tensor", job->model_path, max_elems);
    int n_meta = 0;
    st_meta *meta = rc ? NULL : hf_metadata(&h, &n_meta);
    if (!rc && !meta) rc = err_set("%s: out of memory", job->model_path);
    if (!rc)
        rc = hf_shards_write(job->out_dir, h.out, h.n, meta, n_meta, job->opts->max_shard_bytes,
                             hf_fetch, &h, &job->rep->n_shards);
    if (h.last) merge_release_pages(h.last->data, h.last->n_bytes);
    free(meta);
    if (!rc) merge_report_tensors(job->rep, h.out, h.n);
    for (size_t k = 0; k < sizeof HF_COPIED_FILES / sizeof HF_COPIED_FILES[0] && !rc; k++) {
        char src[4096], *text;
        size_t len;
        if (path_join(src, sizeof src, job->model_path, HF_COPIED_FILES[k])) rc = -1;
        else if (!path_exists(src)) continue;
        else if (file_read_all(src, &text, &len)) rc = -1;
        else {
            char dst[4096];
            rc = path_join(dst, sizeof dst, job->out_dir, HF_COPIED_FILES[k]);
            if (!rc) rc = file_write_atomic(dst, text, len);
            free(text);
        }
    }
    hf_merge_free(&h);
    return rc;
}

// ---- driver ----

uint64_t merge_parse_size(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0) return 0;
    double mult = 1;
    if (*end == 'K' || *end == 'k') mult = 1024.0, end++;
    else if (*end == 'M' || *end == 'm') mult = 1024.0 * 1024.0, end++;
    else if (*end == 'G' || *end == 'g') mult = 1024.0 * 1024.0 * 1024.0, end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end) return 0;
    return (uint64_t)(v * mult);
}

// The base's config and the adapter checked against it, for both kinds of merge output.
static int base_and_adapter_load(const char *model_path, const char *adapter_dir,
                                 model_config *mc, lora_adapter *a) {
    if (base_model_config(model_path, mc)) return -1;
    if (!dir_is_peft_adapter(adapter_dir))
        return err_set("%s: not a PEFT adapter directory (no adapter_config.json)", adapter_dir);
    return peft_adapter_load(adapter_dir, mc, a);
}

static int merge_model_to_gguf(const char *model_path, const char *adapter_dir,
                               const char *out_path, const merge_options *o, merge_report *rep) {
    if (path_is_dir(model_path))
        return err_set("%s: merging into a GGUF file needs a GGUF base; merge a Hugging Face "
                       "base into a directory",
                       model_path);
    if (path_exists(out_path))
        return err_set("%s: already exists (merge writes a new file)", out_path);
    model_config mc;
    lora_adapter a;
    if (base_and_adapter_load(model_path, adapter_dir, &mc, &a)) return -1;
    rep->from_gguf = 1;
    merge_job job = {model_path, NULL, &mc, &a, o, rep};
    int rc = merge_to_gguf(&job, out_path);
    lora_adapter_free(&a);
    return rc;
}

int merge_model(const char *model_path, const char *adapter_dir, const char *out_dir,
                const merge_options *opts, merge_report *rep) {
    memset(rep, 0, sizeof *rep);
    merge_options o = *opts;
    if (!o.max_shard_bytes) o.max_shard_bytes = merge_parse_size(MERGE_DEFAULT_MAX_SHARD_SIZE);
    if (str_has_suffix(out_dir, ".gguf"))
        return merge_model_to_gguf(model_path, adapter_dir, out_dir, &o, rep);
    if (path_exists(out_dir) && !(path_is_dir(out_dir) && dir_is_empty(out_dir)))
        return err_set("%s: already exists and is not an empty directory (merge writes a new "
                       "model directory)",
                       out_dir);
    model_config mc;
    lora_adapter a;
    if (base_and_adapter_load(model_path, adapter_dir, &mc, &a)) return -1;
    char partial[4096];
    int rc = dir_partial_begin(partial, sizeof partial, out_dir);
    if (!rc) {
        rep->from_gguf = !path_is_dir(model_path);
        merge_job job = {model_path, partial, &mc, &a, &o, rep};
        rc = rep->from_gguf ? merge_gguf(&job) : merge_hf(&job);
    }
    if (!rc) rc = dir_publish(partial, out_dir);
    if (rc) {
        // Keep the error that caused the failure, not one from the cleanup.
        char saved[2048];
        snprintf(saved, sizeof saved, "%s", err_msg());
        dir_remove_recursive(partial);
        err_set("%s", saved);
    }
    lora_adapter_free(&a);
    return rc;
}
