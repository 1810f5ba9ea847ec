#include "model/tiny_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/rng.h"
#include "formats/safetensors.h"
#include "model/model.h"
#include "model/model_load.h"

static const char *const SPECIAL_TOKENS[3] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

// transformers' ChatML template: no default system prompt, so a conversation is rendered
// exactly as given (data_prep/chat_template.c recognises it by <|im_start|>).
static const char CHATML_TEMPLATE[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

void tiny_model_options_default(tiny_model_options *o) {
    o->hidden_size = 128;
    o->intermediate_size = 352;
    o->n_layers = 4;
    o->n_heads = 4;
    o->n_kv_heads = 2;
    o->max_position_embeddings = 1024;
    o->seed = 42;
}

static int write_json(const char *dir, const char *name, cJSON *j) {
    char path[4096];
    char *text = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!text) return err_set("%s: out of memory writing %s", dir, name);
    size_t len = strlen(text);
    int rc = path_join(path, sizeof path, dir, name) || file_write_atomic(path, text, len);
    free(text);
    return rc ? -1 : 0;
}

static cJSON *config_json(const tiny_model_options *o) {
    cJSON *j = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(j, "model_type", "llama");
    cJSON_AddNumberToObject(j, "hidden_size", o->hidden_size);
    cJSON_AddNumberToObject(j, "intermediate_size", o->intermediate_size);
    cJSON_AddNumberToObject(j, "num_hidden_layers", o->n_layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", o->n_heads);
    cJSON_AddNumberToObject(j, "num_key_value_heads", o->n_kv_heads);
    cJSON_AddNumberToObject(j, "vocab_size", TINY_MODEL_VOCAB);
    cJSON_AddNumberToObject(j, "max_position_embeddings", o->max_position_embeddings);
    cJSON_AddNumberToObject(j, "rms_norm_eps", 1e-5);
    cJSON_AddNumberToObject(j, "rope_theta", 10000.0);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", 1);
    cJSON_AddStringToObject(j, "hidden_act", "silu");
    cJSON_AddNumberToObject(j, "bos_token_id", TINY_MODEL_IM_START);
    cJSON_AddNumberToObject(j, "eos_token_id", TINY_MODEL_IM_END);
    cJSON_AddStringToObject(j, "torch_dtype", "float32");
    return j;
}

// GPT-2's byte-to-unicode table: printable bytes stand for themselves, the other 68 bytes
// (controls, space, 127-160, 173) take the code points 256, 257, ... in byte order.
static void byte_token(int b, char out[4]) {
    int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    int cp = b;
    if (!printable) {
        int n = 0;
        for (int k = 0; k < b; k++)
            n += !((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255));
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = '\0';
    }
}

static cJSON *byte_level(const char *type, int add_prefix_space) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    cJSON_AddBoolToObject(o, "add_prefix_space", add_prefix_space);
    cJSON_AddBoolToObject(o, "trim_offsets", 1);
    cJSON_AddBoolToObject(o, "use_regex", 1);
    return o;
}

static cJSON *tokenizer_json(void) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", "1.0");
    cJSON_AddNullToObject(j, "truncation");
    cJSON_AddNullToObject(j, "padding");
    cJSON *added = cJSON_AddArrayToObject(j, "added_tokens");
    for (int i = 0; i < 3; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", 256 + i);
        cJSON_AddStringToObject(t, "content", SPECIAL_TOKENS[i]);
        cJSON_AddBoolToObject(t, "single_word", 0);
        cJSON_AddBoolToObject(t, "lstrip", 0);
        cJSON_AddBoolToObject(t, "rstrip", 0);
        cJSON_AddBoolToObject(t, "normalized", 0);
        cJSON_AddBoolToObject(t, "special", 1);
        cJSON_AddItemToArray(added, t);
    }
    cJSON_AddNullToObject(j, "normalizer");
    cJSON_AddItemToObject(j, "pre_tokenizer", byte_level("ByteLevel", 0));
    cJSON_AddItemToObject(j, "post_processor", byte_level("ByteLevel", 1));
    cJSON_AddItemToObject(j, "decoder", byte_level("ByteLevel", 1));
    cJSON *m = cJSON_AddObjectToObject(j, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddBoolToObject(m, "fuse_unk", 0);
    cJSON_AddBoolToObject(m, "byte_fallback", 0);
    cJSON_AddBoolToObject(m, "ignore_merges", 0);
    cJSON *vocab = cJSON_AddObjectToObject(m, "vocab");
    for (int b = 0; b < 256; b++) {
        char tok[4];
        byte_token(b, tok);
        cJSON_AddNumberToObject(vocab, tok, b);
    }
    for (int i = 0; i < 3; i++) cJSON_AddNumberToObject(vocab, SPECIAL_TOKENS[i], 256 + i);
    cJSON_AddArrayToObject(m, "merges");
    return j;
}

static cJSON *tokenizer_config_json(void) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "tokenizer_class", "GPT2Tokenizer");
    cJSON_AddStringToObject(j, "bos_token", SPECIAL_TOKENS[1]);
    cJSON_AddStringToObject(j, "eos_token", SPECIAL_TOKENS[2]);
    cJSON_AddStringToObject(j, "pad_token", SPECIAL_TOKENS[0]);
    cJSON_AddStringToObject(j, "unk_token", SPECIAL_TOKENS[0]);
    cJSON_AddBoolToObject(j, "add_prefix_space", 0);
    cJSON_AddNumberToObject(j, "model_max_length", 1024);
    cJSON_AddStringToObject(j, "chat_template", CHATML_TEMPLATE);
    return j;
}

// N(0, std^2) by Box-Muller from two uniforms in (0, 1].
static float normal(rng_state *r, float std) {
    float u1 = 1.0f - rng_uniform(r), u2 = rng_uniform(r);
    return std * sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}

static int write_weights(const char *dir, const tiny_model_options *o) {
    model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.arch = MODEL_ARCH_LLAMA;
    cfg.hidden_size = o->hidden_size;
    cfg.intermediate_size = o->intermediate_size;
    cfg.n_layers = o->n_layers;
    cfg.n_heads = o->n_heads;
    cfg.n_kv_heads = o->n_kv_heads;
    cfg.head_dim = o->n_heads > 0 ? o->hidden_size / o->n_heads : 0;
    cfg.vocab_size = TINY_MODEL_VOCAB;
    cfg.max_position_embeddings = o->max_position_embeddings;
    cfg.rms_norm_eps = 1e-5f;
    cfg.rope_theta = 10000.0f;
    cfg.tie_word_embeddings = 1;
    cfg.bos_token_id = TINY_MODEL_IM_START;
    cfg.eos_token_ids[0] = TINY_MODEL_IM_END;
    cfg.n_eos = 1;
    if (model_config_validate(&cfg, dir)) return -1;
    model m;
    if (model_alloc(&m, &cfg)) return -1;
    weight_slot *slots = NULL;
    int n = 0;
    if (weight_slots_list(&m, &slots, &n)) {
        model_free(&m);
        return -1;
    }
    st_write_tensor *ts = calloc((size_t)n, sizeof *ts);
    if (!ts) {
        free(slots);
        model_free(&m);
        return err_set("%s: out of memory", dir);
    }
    rng_state rng;
    rng_init(&rng, o->seed);
    for (int i = 0; i < n; i++) {
        const weight_slot *s = &slots[i];
        size_t count = (size_t)s->rows * (size_t)(s->cols ? s->cols : 1);
        for (size_t k = 0; k < count; k++) s->dst[k] = s->cols ? normal(&rng, 0.02f) : 1.0f;
        ts[i].name = s->hf_name;
        ts[i].dtype = ST_F32;
        ts[i].n_dims = s->cols ? 2 : 1;
        ts[i].shape[0] = s->rows;
        ts[i].shape[1] = s->cols;
        ts[i].data = s->dst;
    }
    char path[4096];
    st_meta meta = {"format", "pt"};
    int rc = path_join(path, sizeof path, dir, "model.safetensors") ||
             safetensors_write(path, ts, n, &meta, 1);
    free(ts);
    free(slots);
    model_free(&m);
    return rc ? -1 : 0;
}

int tiny_model_write(const char *dir, const tiny_model_options *o) {
    if (dir_create(dir)) return -1;
    if (write_weights(dir, o) || write_json(dir, "config.json", config_json(o)) ||
        write_json(dir, "tokenizer.json", tokenizer_json()) ||
        write_json(dir, "tokenizer_config.json", tokenizer_config_json()))
        return -1;
    return 0;
}
