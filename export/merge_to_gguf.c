// Merging a GGUF base into a GGUF file (`medtune merge BASE.gguf ADAPTER OUT.gguf --type T`):
// the base's metadata (architecture, hyperparameters, tokenizer, chat template) is copied key
// by key, tensors keep the base's names, order and llama.cpp's Q/K row order. An adapted
// weight is dequantized to fp32, W += scale * B A is added in fp32 with the delta's rows
// permuted from Hugging Face order into llama.cpp's (llama only; the fused matrices of phi3 and
// gpt2 keep HF's row order, and gpt2's are stored [out, in] like every other), and the sum is
// quantized once to the output type. Every refusal (a shape the output type cannot hold, a type medtune cannot
// convert) happens before the output file is opened; the file is written atomically and
// streamed one tensor at a time.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "export/merge_impl.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "formats/quant.h"
#include "model/model_load.h"

typedef struct {
    const gguf_tensor *src;
    uint32_t type;  // output type
    int copy;       // bytes copied as stored (same type, not adapted)
    int adapted, layer, qk_heads;
    lora_target target;
} out_tensor;

typedef struct {
    gguf_file f;
    out_tensor *t;
    int64_t n;
    float *w, *delta;
    void *out;
    const gguf_tensor *last;  // input whose pages are released at the next fetch
    const merge_job *job;
} to_gguf;

// llama.cpp's general.file_type for a file whose matrices are all of one type.
static int file_type_of(uint32_t type) {
    switch (type) {
    case GGML_TYPE_F32: return 0;
    case GGML_TYPE_F16: return 1;
    case GGML_TYPE_Q4_0: return 2;
    case GGML_TYPE_Q4_1: return 3;
    case GGML_TYPE_Q8_0: return 7;
    case GGML_TYPE_Q5_0: return 8;
    case GGML_TYPE_Q5_1: return 9;
    case GGML_TYPE_Q4_K: return 14;  // "Q4_K_S": every matrix Q4_K
    case GGML_TYPE_Q5_K: return 16;  // "Q5_K_S"
    case GGML_TYPE_Q6_K: return 18;
    case GGML_TYPE_BF16: return 32;
    default: return -1;
    }
}

// Adds the rows of the HF-order delta d [rows, cols] to w in llama.cpp's order: within each
// head of dim D, HF row a * D/2 + j is llama.cpp's row 2 j + a (convert_hf_to_gguf's permute).
static void add_delta_permuted(float *w, const float *d, int64_t rows, int64_t cols, int heads) {
    int64_t D = rows / heads, half = D / 2;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t a = 0; a < 2; a++)
            for (int64_t j = 0; j < half; j++) {
                const float *src = d + (h * D + a * half + j) * cols;
                float *dst = w + (h * D + 2 * j + a) * cols;
                for (int64_t c = 0; c < cols; c++) dst[c] += src[c];
            }
}

static const void *to_gguf_fetch(void *ctx, int64_t i) {
    to_gguf *g = ctx;
    const out_tensor *o = &g->t[i];
    const gguf_tensor *t = o->src;
    if (g->last) merge_release_pages(g->last->data, g->last->n_bytes);
    g->last = t;
    if (o->copy) return t->data;
    if (gguf_tensor_to_f32(&g->f, t, g->w)) return NULL;
    if (o->adapted) {
        const lora_slot *s = &g->job->a->slots[o->target];
        size_t n = (size_t)s->out * (size_t)s->in;
        if (g->job->mc->arch == MODEL_ARCH_LLAMA && o->qk_heads) {
            memset(g->delta, 0, n * sizeof(float));
            merge_add_delta(g->delta, g->job->a, o->layer, o->target);
            add_delta_permuted(g->w, g->delta, s->out, s->in, o->qk_heads);
        } else {
            merge_add_delta_rows(g->w, g->job->a, o->layer, o->target);
        }
    }
    // Rows are quantized in parallel (the K-quant searches dominate a merge's time); each row
    // is whole blocks, so the bytes do not depend on the thread count.
    int64_t cols = t->ne[0], rows = (int64_t)t->n_elements / cols;
    size_t row_bytes = quant_row_bytes(o->type, cols);
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad)
    for (int64_t r = 0; r < rows; r++)
        bad |= quant_quantize_row(o->type, g->w + r * cols, (uint8_t *)g->out + r * row_bytes,
                                  cols) != 0;
    if (bad) {
        err_set("%s: %s: cannot quantize to %s", g->f.path, t->name, ggml_type_name(o->type));
        return NULL;
    }
    return g->out;
}

// Decides every tensor's output type and refuses, naming the tensor and the type, what cannot
// be written. `type` is the --type id, or -1 for `same`.
static int plan_tensor(to_gguf *g, out_tensor *o, int64_t type) {
    const gguf_tensor *t = o->src;
    const char *path = g->f.path;
    int matrix = t->n_dims >= 2 && t->ne[1] > 1;
    // Norms and other vectors stay F32: llama.cpp keeps them F32 in every quantized file.
    o->type = !matrix ? GGML_TYPE_F32 : type < 0 ? t->type : (uint32_t)type;
    o->copy = !o->adapted && o->type == t->type;
    if (o->copy) return 0;
    if (!quant_can_dequantize(t->type))
        return err_set("%s: %s: tensor type %s is not supported (nearest supported: %s)", path,
                       t->name, ggml_type_name(t->type), quant_nearest_supported(t->type));
    if (!quant_can_quantize(o->type))
        return err_set("%s: %s: cannot write %s (medtune quantizes to F32, F16, BF16, Q4_0, "
                       "Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K); choose another --type",
                       path, t->name, ggml_type_name(o->type));
    if (t->ne[0] % quant_block_size(o->type) != 0)
        return err_set("%s: %s: rows of %lld elements cannot be stored as %s (blocks of %u); "
                       "choose --type q8_0 or f16",
                       path, t->name, (long long)t->ne[0], ggml_type_name(o->type),
                       quant_block_size(o->type));
    return 0;
}

// Marks the weights the adapter changes (through the HF names of weight_slots_list) and checks
// their shapes against the adapter.
static int find_adapted(to_gguf *g) {
    const merge_job *job = g->job;
    model shell = {.cfg = *job->mc};
    weight_slot *slots = NULL;
    int n = 0, rc = 0;
    shell.layers = calloc((size_t)job->mc->n_layers, sizeof *shell.layers);
    if (!shell.layers) return err_set("%s: out of memory", g->f.path);
    rc = weight_slots_list(&shell, &slots, &n);
    for (int k = 0; k < n && !rc; k++) {
        int layer;
        lora_target target;
        if (!merge_target_of(job->a, slots[k].hf_name, &layer, &target)) continue;
        const gguf_tensor *t = gguf_find_tensor(&g->f, slots[k].gguf_name);
        if (!t) {
            rc = err_set("%s: %s: missing tensor", g->f.path, slots[k].gguf_name);
            break;
        }
        const lora_slot *s = &job->a->slots[target];
        if (t->n_dims != 2 || t->ne[0] != s->in || t->ne[1] != s->out) {
            rc = err_set("%s: %s: ne [%lld, %lld] does not match the adapter's [%d, %d]",
                         g->f.path, t->name, (long long)t->ne[0], (long long)t->ne[1], s->in,
                         s->out);
            break;
        }
        out_tensor *o = &g->t[t - g->f.tensors];
        o->adapted = 1;
        o->layer = layer;
        o->target = target;
        o->qk_heads = slots[k].qk_heads;
        job->rep->n_merged++;
    }
    free(slots);
    free(shell.layers);
    return rc;
}

static void report_types(merge_report *rep, const out_tensor *t, int64_t n) {
    char *d = rep->dtypes;
    d[0] = '\0';
    for (int64_t i = 0; i < n; i++) {
        const char *name = ggml_type_name(t[i].type);
        char bounded[24];
        snprintf(bounded, sizeof bounded, "+%s+", name);
        char have[sizeof rep->dtypes + 2];
        snprintf(have, sizeof have, "+%s+", d);
        if (!strstr(have, bounded) && strlen(d) + strlen(name) + 2 < sizeof rep->dtypes) {
            if (*d) strcat(d, "+");
            strcat(d, name);
        }
        rep->bytes += quant_row_bytes(t[i].type, (int64_t)t[i].src->n_elements);
    }
    rep->n_tensors = (int)n;
}

int merge_to_gguf(const merge_job *job, const char *out_path) {
    to_gguf g = {.job = job};
    if (gguf_open(&g.f, job->model_path)) return -1;
    gguf_writer w;
    gguf_writer_init(&w);
    w.fetch = to_gguf_fetch;
    w.fetch_ctx = &g;
    int64_t type = job->opts->gguf_type_same ? -1 : (int64_t)job->opts->gguf_type;
    g.n = g.f.n_tensors;
    int rc = 0;
    if (!(g.t = calloc((size_t)(g.n ? g.n : 1), sizeof *g.t)))
        rc = err_set("%s: out of memory", job->model_path);
    for (int64_t i = 0; i < g.n && !rc; i++) g.t[i].src = &g.f.tensors[i];
    if (!rc) rc = find_adapted(&g);
    size_t max_elems = 0, max_delta = 0, max_bytes = 0;
    for (int64_t i = 0; i < g.n && !rc; i++) {
        out_tensor *o = &g.t[i];
        rc = plan_tensor(&g, o, type);
        if (rc || o->copy) continue;
        size_t n = o->src->n_elements;
        if (n > max_elems) max_elems = n;
        if (o->adapted && n > max_delta) max_delta = n;
        if (quant_row_bytes(o->type, (int64_t)n) > max_bytes)
            max_bytes = quant_row_bytes(o->type, (int64_t)n);
    }
    if (!rc && !((g.w = malloc(max_elems * sizeof(float) + 1)) &&
                 (g.delta = malloc(max_delta * sizeof(float) + 1)) &&
                 (g.out = malloc(max_bytes + 1))))
        rc = err_set("%s: out of memory for a %zu-element tensor", job->model_path, max_elems);
    // Metadata in the base's order. The writer aligns to 32 bytes, so general.alignment is
    // dropped; general.file_type follows the output type unless every tensor keeps its own.
    int file_type = type < 0 ? -1 : file_type_of((uint32_t)type);
    int wrote_file_type = 0;
    for (int64_t i = 0; i < g.f.n_kv && !rc; i++) {
        const gguf_kv *kv = &g.f.kvs[i];
        if (!strcmp(kv->key, "general.alignment")) continue;
        if (!strcmp(kv->key, "general.file_type") && file_type >= 0) {
            gguf_writer_add_u32(&w, kv->key, (uint32_t)file_type);
            wrote_file_type = 1;
            continue;
        }
        gguf_writer_copy_kv(&w, kv);
    }
    if (!rc && file_type >= 0 && !wrote_file_type)
        gguf_writer_add_u32(&w, "general.file_type", (uint32_t)file_type);
    for (int64_t i = 0; i < g.n && !rc; i++) {
        const gguf_tensor *t = g.t[i].src;
        rc = gguf_writer_add_tensor(&w, t->name, t->n_dims, t->ne, g.t[i].type, NULL);
        if (rc) err_prefix("%s", out_path);
    }
    if (!rc) rc = gguf_writer_write(&w, out_path);
    if (g.last) merge_release_pages(g.last->data, g.last->n_bytes);
    if (!rc) report_types(job->rep, g.t, g.n);
    gguf_writer_free(&w);
    free(g.w);
    free(g.delta);
    free(g.out);
    free(g.t);
    gguf_close(&g.f);
    return rc;
}
