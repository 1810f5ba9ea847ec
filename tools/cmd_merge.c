// medtune merge MODEL ADAPTER_DIR OUT_DIR [--dtype f32|f16] [--max-shard-size SIZE]
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/fileio.h"
#include "export/merge.h"
#include "tools/commands.h"

typedef struct {
    const char *model, *adapter, *out, *dtype, *max_shard_size;
} merge_args;

static const cli_positional POSITIONALS[] = {
    {"MODEL", offsetof(merge_args, model), "the base model: a Hugging Face directory or .gguf file",
     0},
    {"ADAPTER_DIR", offsetof(merge_args, adapter), "a PEFT adapter directory", 0},
    {"OUT_DIR", offsetof(merge_args, out),
     "the merged model's directory; must not exist or be empty", 0},
    {0},
};

static const cli_option OPTIONS[] = {
    {.name = "dtype", .kind = CLI_STRING, .choices = "f32|f16",
     .offset = offsetof(merge_args, dtype),
     .help = "output dtype for GGUF bases", .default_text = "f32"},
    {.name = "max-shard-size", .kind = CLI_STRING, .metavar = "SIZE",
     .offset = offsetof(merge_args, max_shard_size),
     .help = "shard model.safetensors above SIZE bytes; suffixes K, M, G"},
    {0},
};

static int run(int argc, char **argv) {
    merge_args a = {.max_shard_size = MERGE_DEFAULT_MAX_SHARD_SIZE};
    int code;
    if (cli_parse(&MERGE_COMMAND, argc, argv, &a, &code)) return code;
    merge_options o = {0};
    if (!(o.max_shard_bytes = merge_parse_size(a.max_shard_size)))
        return cli_usage_error("merge", "--max-shard-size: expected a size like 2G, got '%s'",
                               a.max_shard_size);
    if (a.dtype && path_is_dir(a.model)) {
        err_set("%s: --dtype applies to GGUF bases only; a Hugging Face base keeps its dtype",
                a.model);
        return cli_fail();
    }
    o.gguf_dtype_f16 = a.dtype && !strcmp(a.dtype, "f16");
    double t0 = clock_now_s();
    merge_report rep;
    if (merge_model(a.model, a.adapter, a.out, &o, &rep)) return cli_fail();
    fprintf(stderr,
            "medtune: merged %d projections into %s -> %s (%d tensors, %.1f MiB %s, %d "
            "shard%s) in %.1f s\n",
            rep.n_merged, a.model, a.out, rep.n_tensors, (double)rep.bytes / (1024.0 * 1024.0),
            rep.dtypes, rep.n_shards, rep.n_shards == 1 ? "" : "s", clock_now_s() - t0);
    return 0;
}

const cli_command MERGE_COMMAND = {
    .name = "merge",
    .summary = "fold a LoRA adapter into its base model (Hugging Face directory)",
    .description =
        "Folds a PEFT LoRA adapter into its base model (W' = W + scale * B A in fp32) and\n"
        "writes a Hugging Face model directory that transformers and medtune load.\n\n"
        "  Hugging Face base: tensors keep their dtype (F32, F16 or BF16, merged weights\n"
        "    rounded to nearest even); config.json, generation_config.json and the\n"
        "    tokenizer files are copied.\n"
        "  GGUF base: weights are dequantized and written as F32 or F16 (--dtype);\n"
        "    config.json, generation_config.json and the tokenizer files\n"
        "    (tokenizer.json, tokenizer_config.json with the chat template,\n"
        "    special_tokens_map.json) are generated from the GGUF metadata.\n",
    .positionals = POSITIONALS,
    .options = OPTIONS,
    .run = run,
};
