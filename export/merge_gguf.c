// Merging into a GGUF base: every weight medtune loads is dequantized to fp32, its Q/K rows put
// back in Hugging Face order (llama), merged when adapted, and written under its HF name as
// F32 or F16; config.json, generation_config.json and the tokenizer files (hf_tokenizer.h) are
// generated from the GGUF metadata.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/hf_shards.h"
#include "export/hf_tokenizer.h"
#include "export/merge_impl.h"
#include "common/error.h"
#include "formats/gguf.h"
#include "model/model_load.h"

typedef struct {
    gguf_file f;
    weight_slot *slots;
    const gguf_tensor **src;
    st_write_tensor *out;
    int n;
    float *f32, *perm;
    void *conv;
    const merge_job *job;
} gguf_merge;

static const void *gguf_fetch(void *ctx, int i) {
    gguf_merge *g = ctx;
    const gguf_tensor *t = g->src[i];
    const weight_slot *s = &g->slots[i];
    if (gguf_tensor_to_f32(&g->f, t, g->f32)) return NULL;
    merge_release_pages(t->data, t->n_bytes);
    float *w = g->f32;
    if (g->job->mc->arch == MODEL_ARCH_LLAMA && s->qk_heads) {
        qk_rows_unpermute(g->perm, g->f32, s->qk_heads, (int)(s->rows / s->qk_heads),
                          s->cols ? s->cols : 1);
        w = g->perm;
    }
    merge_arch_from_gguf(w, s, g->job->mc);
    int layer;
    lora_target target;
    if (merge_target_of(g->job->a, s->hf_name, &layer, &target))
        merge_add_delta(w, g->job->a, layer, target);
    if (g->out[i].dtype == ST_F32) return w;
    merge_f32_to_dtype(g->conv, w, t->n_elements, g->out[i].dtype);
    return g->conv;
}

// The shortest decimal that reads back as the same float (1e-05, not 9.99999974737875e-06).
static cJSON *json_float(float f) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return cJSON_CreateNumber(strtod(buf, NULL));
}

static cJSON *token_ids_json(const model_config *c) {
    if (c->n_eos == 1) return cJSON_CreateNumber(c->eos_token_ids[0]);
    if (c->n_eos == 0) return cJSON_CreateNull();
    return cJSON_CreateIntArray(c->eos_token_ids, c->n_eos);
}

// config.json with every field transformers' LlamaConfig / Qwen2Config and medtune's loader
// read, so both rebuild the same model.
static char *config_json(const model_config *c, int f16) {
    int qwen = c->arch == MODEL_ARCH_QWEN2;
    cJSON *j = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    cJSON_AddStringToObject(j, "model_type", qwen ? "qwen2" : "llama");
    cJSON_AddNumberToObject(j, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(j, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(j, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(j, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddItemToObject(j, "rms_norm_eps", json_float(c->rms_norm_eps));
    cJSON_AddItemToObject(j, "rope_theta", json_float(c->rope_theta));
    if (c->rope_scaling == ROPE_SCALING_LINEAR) {
        cJSON *r = cJSON_AddObjectToObject(j, "rope_scaling");
        cJSON_AddStringToObject(r, "rope_type", "linear");
        cJSON_AddStringToObject(r, "type", "linear");
        cJSON_AddItemToObject(r, "factor", json_float(c->rope_factor));
    } else {
        cJSON_AddNullToObject(j, "rope_scaling");
    }
    cJSON_AddBoolToObject(j, "tie_word_embeddings", c->tie_word_embeddings);
    if (!qwen) {
        cJSON_AddBoolToObject(j, "attention_bias", c->attention_bias);
        cJSON_AddBoolToObject(j, "mlp_bias", 0);
    } else {
        cJSON_AddBoolToObject(j, "use_sliding_window", 0);
    }
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(j, "bos_token_id", c->bos_token_id);
    else cJSON_AddNullToObject(j, "bos_token_id");
    cJSON_AddItemToObject(j, "eos_token_id", token_ids_json(c));
    cJSON_AddStringToObject(j, "torch_dtype", f16 ? "float16" : "float32");
    merge_arch_config(j, c, json_float);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    return text;
}

static char *generation_config_json(const model_config *c) {
    cJSON *j = cJSON_CreateObject();
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(j, "bos_token_id", c->bos_token_id);
    cJSON_AddItemToObject(j, "eos_token_id", token_ids_json(c));
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    return text;
}

static int check_source(const gguf_file *f, const weight_slot *s, const gguf_tensor **out) {
    const gguf_tensor *t = gguf_find_tensor(f, s->gguf_name);
    if (!t) return err_set("%s: %s: missing tensor", f->path, s->gguf_name);
    int64_t want0 = s->cols ? s->cols : s->rows, want1 = s->cols ? s->rows : 1;
    if (t->n_dims != (s->cols ? 2 : 1) || t->ne[0] != want0 || t->ne[1] != want1)
        return err_set("%s: %s: ne [%lld, %lld], expected [%lld, %lld]", f->path, t->name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)want0,
                       (long long)want1);
    if (!quant_can_dequantize(t->type))
        return err_set("%s: %s: tensor type %s is not supported (nearest supported: %s)",
                       f->path, t->name, ggml_type_name(t->type),
                       quant_nearest_supported(t->type));
    *out = t;
    return 0;
}

int merge_gguf(const merge_job *job) {
    // The HF directory written here (config.json, tensor layout) is the Llama family's; a phi3
    // or gpt2 GGUF base merges into a GGUF file (merge_to_gguf.c).
    if (job->mc->arch == MODEL_ARCH_PHI3 || job->mc->arch == MODEL_ARCH_GPT2)
        return err_set("%s: merging a %s GGUF base into a Hugging Face directory is unsupported "
                       "(merge into a .gguf file, or merge its Hugging Face directory)",
                       job->model_path, model_arch_name(job->mc->arch));
    gguf_merge g = {.job = job};
    if (gguf_open(&g.f, job->model_path)) return -1;
    // weight_slots_list only needs the config and the layer table for names and shapes; the
    // weights themselves are never allocated.
    model shell = {.cfg = *job->mc};
    shell.layers = calloc((size_t)job->mc->n_layers, sizeof *shell.layers);
    int rc = shell.layers ? weight_slots_list(&shell, &g.slots, &g.n)
                          : err_set("%s: out of memory", job->model_path);
    if (!rc) {
        g.src = calloc((size_t)g.n, sizeof *g.src);
        g.out = calloc((size_t)g.n, sizeof *g.out);
        if (!g.src || !g.out) rc = err_set("%s: out of memory", job->model_path);
    }
    size_t max_elems = 0;
    st_dtype dtype = job->opts->gguf_dtype_f16 ? ST_F16 : ST_F32;
    for (int i = 0; i < g.n && !rc; i++) {
        const weight_slot *s = &g.slots[i];
        rc = check_source(&g.f, s, &g.src[i]);
        g.out[i] = (st_write_tensor){.name = s->hf_name, .dtype = dtype,
                                     .n_dims = s->cols ? 2 : 1, .shape = {s->rows, s->cols}};
        if (g.src[i] && g.src[i]->n_elements > max_elems) max_elems = g.src[i]->n_elements;
        int layer;
        lora_target t;
        if (!rc && merge_target_of(job->a, s->hf_name, &layer, &t)) job->rep->n_merged++;
    }
    if (!rc && !((g.f32 = malloc(max_elems * sizeof(float))) &&
                 (g.perm = malloc(max_elems * sizeof(float))) &&
                 (g.conv = malloc(max_elems * sizeof(uint16_t)))))
        rc = err_set("%s: out of memory for a %zu-element tensor", job->model_path, max_elems);
    st_meta meta = {"format", "pt"};
    if (!rc)
        rc = hf_shards_write(job->out_dir, g.out, g.n, &meta, 1, job->opts->max_shard_bytes,
                             gguf_fetch, &g, &job->rep->n_shards);
    if (!rc) merge_report_tensors(job->rep, g.out, g.n);
    char *cfg = rc ? NULL : config_json(job->mc, job->opts->gguf_dtype_f16);
    char *gen = rc ? NULL : generation_config_json(job->mc);
    if (!rc && (!cfg || !gen)) rc = err_set("%s: out of memory", job->out_dir);
    if (!rc) rc = merge_write_text(job, "config.json", cfg);
    if (!rc) rc = merge_write_text(job, "generation_config.json", gen);
    if (!rc) rc = hf_tokenizer_write(job->model_path, job->out_dir, job->mc->max_position_embeddings);
    free(cfg);
    free(gen);
    free(g.f32);
    free(g.perm);
    free(g.conv);
    free(g.src);
    free(g.out);
    free(g.slots);
    free(shell.layers);
    gguf_close(&g.f);
    return rc;
}
