// medtune info PATH [--json]: describes what PATH is. Each kind of path (checkpoint, adapter,
// model, shard directory) is one entry of KINDS: a predicate recognising the path and a
// function printing it as text or one JSON object.
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "export/adapter_info.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "data_prep/shard_info.h"
#include "formats/gguf.h"
#include "tools/commands.h"
#include "model/arch.h"
#include "model/model.h"
#include "model/model_load.h"

typedef struct {
    const char *name;
    int (*matches)(const char *path);
    int (*print)(const char *path, int json);  // 0, or -1 with err_msg() set
} info_kind;

static int is_model(const char *path) {
    char cfg[4096];
    if (path_is_dir(path))
        return path_join(cfg, sizeof cfg, path, "config.json") == 0 && path_exists(cfg);
    return gguf_path_is_gguf(path);
}

static const char *rope_scaling_name(rope_scaling_type t) {
    switch (t) {
    case ROPE_SCALING_NONE: return "none";
    case ROPE_SCALING_LINEAR: return "linear";
    case ROPE_SCALING_LLAMA3: return "llama3";
    case ROPE_SCALING_LONGROPE: return "longrope";
    }
    return "?";
}

// The shortest decimal that reads back as the same float, so 1e-5f prints as 1e-05.
static double float_for_json(float f) {
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if ((float)strtod(buf, NULL) == f) break;
    }
    return strtod(buf, NULL);
}

static cJSON *model_json(const model *m) {
    const model_config *c = &m->cfg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "model");
    cJSON_AddStringToObject(o, "path", m->source_path);
    cJSON_AddStringToObject(o, "format", m->source_format);
    cJSON_AddStringToObject(o, "architecture", model_arch_name(c->arch));
    cJSON_AddNumberToObject(o, "n_params", (double)m->n_params);
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(o, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "n_kv_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(o, "rms_norm_eps", float_for_json(c->rms_norm_eps));
    cJSON_AddNumberToObject(o, "rope_theta", float_for_json(c->rope_theta));
    cJSON *rope = cJSON_AddObjectToObject(o, "rope_scaling");
    cJSON_AddStringToObject(rope, "type", rope_scaling_name(c->rope_scaling));
    if (c->rope_scaling != ROPE_SCALING_NONE)
        cJSON_AddNumberToObject(rope, "factor", float_for_json(c->rope_factor));
    if (c->rope_scaling == ROPE_SCALING_LLAMA3) {
        cJSON_AddNumberToObject(rope, "low_freq_factor", float_for_json(c->rope_low_freq_factor));
        cJSON_AddNumberToObject(rope, "high_freq_factor", float_for_json(c->rope_high_freq_factor));
        cJSON_AddNumberToObject(rope, "original_max_position_embeddings",
                                c->rope_original_max_position);
    }
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddBoolToObject(o, "attention_bias", c->attention_bias);
    if (c->sliding_window > 0) {
        cJSON *sw = cJSON_AddArrayToObject(o, "sliding_window_layers");
        for (int l = 0; l < c->n_layers; l++)
            if (arch_layer_sliding(c, l)) cJSON_AddItemToArray(sw, cJSON_CreateNumber(l));
        cJSON_AddNumberToObject(o, "sliding_window", c->sliding_window);
    }
    if (c->rope_local_theta > 0)
        cJSON_AddNumberToObject(o, "rope_local_theta", float_for_json(c->rope_local_theta));
    if (c->final_softcap > 0)
        cJSON_AddNumberToObject(o, "final_logit_softcapping", float_for_json(c->final_softcap));
    cJSON_AddNumberToObject(o, "bos_token_id", c->bos_token_id);
    cJSON *eos = cJSON_AddArrayToObject(o, "eos_token_ids");
    for (int i = 0; i < c->n_eos; i++) cJSON_AddItemToArray(eos, cJSON_CreateNumber(c->eos_token_ids[i]));
    cJSON_AddStringToObject(o, "source_dtypes", m->source_dtypes);
    cJSON_AddStringToObject(o, "tokenizer", m->tokenizer_kind);
    cJSON_AddNumberToObject(o, "weights_bytes", (double)model_memory_bytes(m));
    cJSON_AddNumberToObject(o, "weights_mapped_bytes", (double)m->weight_bytes_mapped);
    cJSON_AddNumberToObject(o, "weights_owned_bytes", (double)m->weight_bytes_owned);
    char hex[65];
    sha256_digest_to_hex(m->stored_sha256, hex);
    cJSON_AddStringToObject(o, "weights_sha256", hex);
    model_fingerprint(m, hex);
    cJSON_AddStringToObject(o, "fingerprint", hex);
    return o;
}

static void print_model_text(const model *m) {
    const model_config *c = &m->cfg;
    printf("model                %s\n", m->source_path);
    printf("format               %s (%s)\n", m->source_format, m->source_dtypes);
    printf("architecture         %s\n", model_arch_name(c->arch));
    const double mib = 1024.0 * 1024.0;
    printf("parameters           %zu (%.1f MiB in memory: %.1f MiB of matrices mapped from the "
           "file, %.1f MiB owned, %.1f MiB of fp32 norms and biases)\n",
           m->n_params, (double)model_memory_bytes(m) / mib,
           (double)m->weight_bytes_mapped / mib, (double)m->weight_bytes_owned / mib,
           (double)m->arena_bytes / mib);
    printf("hidden_size          %d\n", c->hidden_size);
    printf("intermediate_size    %d\n", c->intermediate_size);
    printf("layers               %d\n", c->n_layers);
    printf("heads                %d (kv heads %d, head_dim %d)\n", c->n_heads, c->n_kv_heads,
           c->head_dim);
    printf("vocab_size           %d\n", c->vocab_size);
    printf("max_positions        %d\n", c->max_position_embeddings);
    printf("rms_norm_eps         %g\n", (double)c->rms_norm_eps);
    printf("rope                 theta %g, scaling %s", (double)c->rope_theta,
           rope_scaling_name(c->rope_scaling));
    if (c->rope_scaling != ROPE_SCALING_NONE) printf(" (factor %g)", (double)c->rope_factor);
    printf("\n");
    printf("tied embeddings      %s\n", c->tie_word_embeddings ? "yes" : "no");
    printf("attention bias       %s\n", c->attention_bias ? "yes" : "no");
    if (c->sliding_window > 0) {
        int n = 0;
        for (int l = 0; l < c->n_layers; l++) n += arch_layer_sliding(c, l);
        printf("sliding window       %d positions on %d of %d layers", c->sliding_window, n,
               c->n_layers);
        if (c->rope_local_theta > 0) printf(" (rope theta %g)", (double)c->rope_local_theta);
        printf("\n");
    }
    if (c->final_softcap > 0) printf("logit soft-capping   %g\n", (double)c->final_softcap);
    printf("bos / eos            %d /", c->bos_token_id);
    for (int i = 0; i < c->n_eos; i++) printf("%s%d", i ? "," : " ", c->eos_token_ids[i]);
    printf("%s\n", c->n_eos ? "" : " none");
    printf("tokenizer            %s\n", m->tokenizer_kind);
    char hex[65];
    sha256_digest_to_hex(m->stored_sha256, hex);
    printf("weights sha256       %s\n", hex);
    model_fingerprint(m, hex);
    printf("fingerprint          %s\n", hex);
}

static int print_model(const char *path, int json) {
    model m;
    if (model_load(&m, path) != 0) return -1;
    if (json) {
        cJSON *o = model_json(&m);
        char *s = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        if (!s) {
            model_free(&m);
            return err_set("%s: out of memory", path);
        }
        printf("%s\n", s);
        free(s);
    } else {
        print_model_text(&m);
    }
    model_free(&m);
    return 0;
}

// Checkpoints and run directories first: a run directory also holds a config.json.
static const info_kind KINDS[] = {
    {"checkpoint", checkpoint_dir_matches, checkpoint_dir_print},
    {"adapter", adapter_dir_matches, adapter_dir_print},
    {"model", is_model, print_model},
    {"shards", shard_dir_matches, shard_dir_print},
};

typedef struct {
    const char *path;
    int json;
} info_args;

static const cli_positional POSITIONALS[] = {
    {"PATH", offsetof(info_args, path),
     "a model, PEFT adapter directory, checkpoint, run directory or shard directory", 0},
    {0},
};

static const cli_option OPTIONS[] = {
    {.name = "json", .kind = CLI_FLAG, .offset = offsetof(info_args, json),
     .help = "print one JSON object instead of text"},
    {0},
};

static int run(int argc, char **argv) {
    info_args a = {0};
    int code;
    if (cli_parse(&INFO_COMMAND, argc, argv, &a, &code)) return code;
    if (!path_exists(a.path)) {
        err_set("%s: no such file or directory", a.path);
        return cli_fail();
    }
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++)
        if (KINDS[i].matches(a.path)) return KINDS[i].print(a.path, a.json) == 0 ? 0 : cli_fail();
    err_set("%s: not a model directory (config.json) or .gguf file", a.path);
    return cli_fail();
}

const cli_command INFO_COMMAND = {
    .name = "info",
    .summary = "describe a model, adapter, shard directory or checkpoint",
    .description =
        "Describes PATH: a model (Hugging Face directory or .gguf file): architecture,\n"
        "dimensions, rope, tied embeddings, parameter count, source dtypes, tokenizer kind,\n"
        "the bytes its weights take in memory (matrices as stored, mapped from the file or\n"
        "owned; norms and biases in fp32), the SHA-256 of its weight tensors as stored and\n"
        "its fingerprint (what a resume compares). A PEFT adapter directory: r,\n"
        "alpha, scale, targets, tensors, parameters. A checkpoint (or run directory: its\n"
        "latest checkpoint): step, tokens seen, config summary and its adapter. A shard\n"
        "directory: splits, documents and tokens, after verifying every frame checksum.\n",
    .positionals = POSITIONALS,
    .options = OPTIONS,
    .run = run,
};
