// medtune generate: text from a model (+ a PEFT adapter), a raw prompt or a chat turn, greedy
// or sampled, streamed to stdout as it is decoded.
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/peft.h"
#include "common/error.h"
#include "tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "generate/generate.h"
#include "model/model.h"

static const char USAGE[] =
    "usage: medtune generate MODEL [--adapter DIR] (--prompt TEXT | --chat TEXT) [options]\n"
    "\n"
    "MODEL is a Hugging Face model directory or a .gguf file. The generated text is streamed\n"
    "to stdout (the prompt is not echoed).\n"
    "  --adapter DIR      PEFT LoRA adapter applied on the fly (default: none)\n"
    "  --prompt TEXT      raw text to continue; BOS is added as the tokenizer does\n"
    "  --chat TEXT        a user message, rendered with the chat template and the\n"
    "                     generation prompt (assistant turn header)\n"
    "  --system TEXT      system message for --chat (default: the template's own default\n"
    "                     system prompt, if it has one)\n"
    "  --template NAME    chat template for --chat: auto, chatml, llama2, llama3, alpaca,\n"
    "                     zephyr (default: auto, recognised from the model's chat_template)\n"
    "  --max-new N        generate at most N tokens (default: 256)\n"
    "  --temperature T    0 = greedy argmax; > 0 samples from softmax(logits / T)\n"
    "                     (default: 0)\n"
    "  --top-p P          nucleus sampling: keep the most probable tokens up to mass P,\n"
    "                     in (0, 1] (default: 1 = off)\n"
    "  --seed S           random seed for sampling (default: 42)\n"
    "  --threads N        CPU threads (default: OMP_NUM_THREADS, else all cores); on a busy\n"
    "                     machine 1 can be faster (a decode step synchronises threads often)\n"
    "  --json             print one JSON object at the end instead of streaming (default:\n"
    "                     off): {text, prompt_ids, ids, stop, prompt_tokens, new_tokens,\n"
    "                     positions_computed, prefill_seconds, decode_seconds, tokens_per_s}\n"
    "  --stats            after the text, print prompt/new tokens and tokens/s to stderr\n"
    "                     (default: off)\n"
    "Generation stops at any EOS id of the model or tokenizer, the chat template's\n"
    "end-of-turn token (--chat), --max-new, or the end of the model's context.\n";

typedef struct {
    const char *model, *adapter, *prompt, *chat, *system, *template_name;
    const char *max_new, *temperature, *top_p, *seed, *threads;
    int json, stats;
} gen_args;

// Returns 0, or a usage exit code.
static int parse_args(int argc, char **argv, gen_args *a) {
    memset(a, 0, sizeof *a);
    struct {
        const char *name;
        const char **dst;
    } valued[] = {
        {"--adapter", &a->adapter},   {"--prompt", &a->prompt},       {"--chat", &a->chat},
        {"--system", &a->system},     {"--template", &a->template_name},
        {"--max-new", &a->max_new},   {"--temperature", &a->temperature},
        {"--top-p", &a->top_p},       {"--seed", &a->seed},           {"--threads", &a->threads},
    };
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--json")) {
            a->json = 1;
            continue;
        }
        if (!strcmp(s, "--stats")) {
            a->stats = 1;
            continue;
        }
        size_t k = 0;
        while (k < sizeof valued / sizeof valued[0] && strcmp(s, valued[k].name)) k++;
        if (k < sizeof valued / sizeof valued[0]) {
            if (i + 1 >= argc) return cli_usage_error("generate", "%s needs a value", s);
            if (*valued[k].dst) return cli_usage_error("generate", "%s given twice", s);
            *valued[k].dst = argv[++i];
        } else if (s[0] == '-' && s[1]) {
            return cli_usage_error("generate", "unknown option '%s'", s);
        } else if (a->model) {
            return cli_usage_error("generate", "more than one MODEL given");
        } else {
            a->model = s;
        }
    }
    if (!a->model) return cli_usage_error("generate", "MODEL is required");
    if (!a->prompt == !a->chat) return cli_usage_error("generate", "give exactly one of --prompt and --chat");
    if (!a->chat && (a->system || a->template_name))
        return cli_usage_error("generate", "--system and --template apply to --chat only");
    return 0;
}

static int parse_int(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return err_set("%s: expected an integer in [%ld, %ld], got '%s'", opt, lo, hi, s);
    *out = v;
    return 0;
}

static int parse_float(const char *opt, const char *s, float lo, float hi, int lo_open, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi || (lo_open && v == lo))
        return err_set("%s: expected a number in %s%g, %g], got '%s'", opt, lo_open ? "(" : "[",
                       lo, hi, s);
    *out = v;
    return 0;
}

static int parse_options(const gen_args *a, generate_options *o) {
    long v = 0;
    if (a->max_new) {
        if (parse_int("--max-new", a->max_new, 1, 1L << 30, &v)) return -1;
        o->max_new = (int)v;
    }
    if (a->temperature && parse_float("--temperature", a->temperature, 0.0f, 1e6f, 0, &o->temperature))
        return -1;
    if (a->top_p && parse_float("--top-p", a->top_p, 0.0f, 1.0f, 1, &o->top_p)) return -1;
    if (a->threads) {
        if (parse_int("--threads", a->threads, 1, 1024, &v)) return -1;
        omp_set_num_threads((int)v);
    }
    if (a->seed) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(a->seed, &end, 10);
        if (errno || end == a->seed || *end || a->seed[0] == '-')
            return err_set("--seed: expected a non-negative integer, got '%s'", a->seed);
        o->seed = s;
    }
    return 0;
}

static void stream_piece(const char *piece, size_t len, void *user) {
    (void)user;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
}

static cJSON *ids_json(const id_vec *v) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < v->len; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(v->data[i]));
    return arr;
}

static double tokens_per_s(const generate_result *r) {
    // Decode steps run one forward each after the prefill; the first token comes from the prefill.
    size_t steps = r->ids.len > 0 ? r->ids.len - 1 : 0;
    return r->decode_seconds > 0 ? (double)steps / r->decode_seconds : 0.0;
}

static int print_json(const generate_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "text", cJSON_CreateString(r->text));
    cJSON_AddItemToObject(o, "prompt_ids", ids_json(&r->prompt_ids));
    cJSON_AddItemToObject(o, "ids", ids_json(&r->ids));
    cJSON_AddStringToObject(o, "stop", generate_stop_name(r->stop));
    cJSON_AddNumberToObject(o, "prompt_tokens", (double)r->prompt_ids.len);
    cJSON_AddNumberToObject(o, "new_tokens", (double)r->ids.len);
    cJSON_AddNumberToObject(o, "positions_computed", (double)r->positions_computed);
    cJSON_AddNumberToObject(o, "prefill_seconds", r->prefill_seconds);
    cJSON_AddNumberToObject(o, "decode_seconds", r->decode_seconds);
    cJSON_AddNumberToObject(o, "tokens_per_s", tokens_per_s(r));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return err_set("generate: out of memory for the JSON output");
    puts(s);
    free(s);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    gen_args a;
    int usage = parse_args(argc, argv, &a);
    if (usage) return usage;

    generate_options opt;
    generate_options_default(&opt, NULL, NULL);
    if (parse_options(&a, &opt)) return cli_fail();
    model m;
    if (model_load(&m, a.model)) return cli_fail();
    tokenizer *tok = tokenizer_load(a.model);
    if (!tok) {
        model_free(&m);
        return cli_fail();
    }
    lora_adapter ad = {0};
    int have_adapter = 0;
    int rc = generate_options_stop_at_eos(&opt, &m, tok);
    if (!rc && a.adapter) {
        rc = peft_adapter_load(a.adapter, &m.cfg, &ad);
        have_adapter = !rc;
    }
    generate_result res = {0};
    const lora_adapter *lora = have_adapter ? &ad : NULL;
    generate_piece_fn stream = a.json ? NULL : stream_piece;
    if (!rc && a.chat) {
        rc = generate_chat(&m, lora, tok, a.template_name ? a.template_name : "auto", a.system,
                           a.chat, &opt, stream, NULL, &res);
        if (rc) err_prefix("%s", a.model);
    } else if (!rc) {
        rc = generate_text(&m, lora, tok, a.prompt, &opt, stream, NULL, &res);
    }
    if (!rc) {
        if (a.json) rc = print_json(&res);
        else if (res.text_len == 0 || res.text[res.text_len - 1] != '\n') putchar('\n');
        if (a.stats)
            fprintf(stderr, "prompt %zu tokens in %.3f s, %zu new tokens in %.3f s (%.1f tokens/s), stop: %s\n",
                    res.prompt_ids.len, res.prefill_seconds, res.ids.len, res.decode_seconds,
                    tokens_per_s(&res), generate_stop_name(res.stop));
    }
    if (!rc && fflush(stdout) != 0) rc = err_set("stdout: write failed");
    generate_result_free(&res);
    if (have_adapter) lora_adapter_free(&ad);
    tokenizer_free(tok);
    model_free(&m);
    return rc ? cli_fail() : 0;
}
