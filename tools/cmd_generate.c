// medtune generate: text from a model (+ a PEFT adapter), a raw prompt or a chat turn, greedy
// or sampled, streamed to stdout as it is decoded.
#include <cjson/cJSON.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/peft.h"
#include "common/error.h"
#include "tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "generate/generate.h"
#include "model/model.h"

typedef struct {
    const char *model, *adapter, *prompt, *chat, *system, *template_name;
    long long max_new, seed, threads;
    double temperature, top_p;
    int json, stats;
} gen_args;

static const cli_positional POSITIONALS[] = {
    {"MODEL", offsetof(gen_args, model), "a Hugging Face model directory or a .gguf file", 0},
    {0},
};

static const cli_option OPTIONS[] = {
    {.name = "adapter", .kind = CLI_STRING, .metavar = "DIR", .offset = offsetof(gen_args, adapter),
     .help = "PEFT LoRA adapter applied on the fly", .default_text = "none"},
    {.name = "prompt", .kind = CLI_STRING, .metavar = "TEXT", .offset = offsetof(gen_args, prompt),
     .help = "raw text to continue; BOS is added as the tokenizer does", .one_of = 1},
    {.name = "chat", .kind = CLI_STRING, .metavar = "TEXT", .offset = offsetof(gen_args, chat),
     .help = "a user message, rendered with the chat template and the generation prompt "
             "(assistant turn header)",
     .one_of = 1},
    {.name = "system", .kind = CLI_STRING, .metavar = "TEXT", .offset = offsetof(gen_args, system),
     .help = "system message for --chat",
     .default_text = "the template's own default system prompt, if it has one"},
    {.name = "template", .kind = CLI_STRING, .metavar = "NAME",
     .offset = offsetof(gen_args, template_name),
     .help = "chat template for --chat: auto (recognised from the model's chat_template), chatml, "
             "llama2, llama3, alpaca, zephyr, gemma, qwen3, phi3",
     .default_text = "auto"},
    {.name = "max-new", .kind = CLI_INT, .metavar = "N", .offset = offsetof(gen_args, max_new),
     .help = "generate at most N tokens", .min = 1, .max = 1 << 30},
    {.name = "temperature", .kind = CLI_FLOAT, .metavar = "T",
     .offset = offsetof(gen_args, temperature),
     .help = "0 = greedy argmax; > 0 samples from softmax(logits / T)", .min = 0, .max = 1e6},
    {.name = "top-p", .kind = CLI_FLOAT, .metavar = "P", .offset = offsetof(gen_args, top_p),
     .help = "nucleus sampling: keep the most probable tokens up to mass P; 1 = off", .min = 0,
     .max = 1, .min_open = 1},
    {.name = "seed", .kind = CLI_INT, .metavar = "S", .offset = offsetof(gen_args, seed),
     .help = "random seed for sampling", .min = 0, .max = CLI_UNBOUNDED},
    {.name = "threads", .kind = CLI_INT, .metavar = "N", .offset = offsetof(gen_args, threads),
     .help = "CPU threads; on a busy machine 1 can be faster",
     .min = 1, .max = 1024, .default_text = "OMP_NUM_THREADS, else all cores"},
    {.name = "json", .kind = CLI_FLAG, .offset = offsetof(gen_args, json),
     .help = "print one JSON object at the end instead of streaming (fields below)",
     .default_text = "off"},
    {.name = "stats", .kind = CLI_FLAG, .offset = offsetof(gen_args, stats),
     .help = "after the text, print prompt/new tokens and tokens/s to stderr",
     .default_text = "off"},
    {0},
};

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

static int run(int argc, char **argv) {
    generate_options opt;
    generate_options_default(&opt, NULL, NULL);
    gen_args a = {.max_new = opt.max_new, .seed = (long long)opt.seed,
                  .temperature = opt.temperature, .top_p = opt.top_p};
    int code;
    if (cli_parse(&GENERATE_COMMAND, argc, argv, &a, &code)) return code;
    if (!a.chat && (a.system || a.template_name))
        return cli_usage_error("generate", "--system and --template apply to --chat only");
    opt.max_new = (int)a.max_new;
    opt.seed = (uint64_t)a.seed;
    opt.temperature = (float)a.temperature;
    opt.top_p = (float)a.top_p;
    if (a.threads) omp_set_num_threads((int)a.threads);
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

const cli_command GENERATE_COMMAND = {
    .name = "generate",
    .summary = "text from a model (+ adapter): greedy or sampled, raw prompt or chat",
    .description =
        "Generates text from MODEL (and a PEFT adapter, applied on the fly), greedy or\n"
        "sampled, and streams it to stdout as it is decoded (the prompt is not echoed).\n",
    .positionals = POSITIONALS,
    .options = OPTIONS,
    .epilog =
        "Generation stops at any EOS id of the model or tokenizer, the chat template's\n"
        "end-of-turn token (--chat), --max-new, or the end of the model's context.\n"
        "--json prints {text, prompt_ids, ids, stop, prompt_tokens, new_tokens,\n"
        "positions_computed, prefill_seconds, decode_seconds, tokens_per_s}.\n",
    .bad_value_is_input = 1,
    .run = run,
};
