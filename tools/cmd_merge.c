// medtune merge MODEL ADAPTER_DIR OUT_DIR [--dtype f32|f16] [--max-shard-size SIZE]
// medtune merge BASE.gguf ADAPTER_DIR OUT.gguf [--type f16|q8_0|q4_k|same|...]
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/str.h"
#include "export/merge.h"
#include "formats/quant.h"
#include "tools/commands.h"

typedef struct {
    const char *model, *adapter, *out, *dtype, *type, *max_shard_size;
} merge_args;

// --type names and their ggml types ("same": each matrix keeps the base's type).
static const struct {
    const char *name;
    uint32_t type;
} OUT_TYPES[] = {
    {"f32", GGML_TYPE_F32},   {"f16", GGML_TYPE_F16},   {"bf16", GGML_TYPE_BF16},
    {"q8_0", GGML_TYPE_Q8_0}, {"q6_k", GGML_TYPE_Q6_K}, {"q5_k", GGML_TYPE_Q5_K},
    {"q5_0", GGML_TYPE_Q5_0}, {"q4_k", GGML_TYPE_Q4_K}, {"q4_0", GGML_TYPE_Q4_0},
};

static const cli_positional POSITIONALS[] = {
    {"MODEL", offsetof(merge_args, model), "the base model: a Hugging Face directory or .gguf file",
     0},
    {"ADAPTER_DIR", offsetof(merge_args, adapter), "a PEFT adapter directory", 0},
    {"OUT", offsetof(merge_args, out),
     "the merged model: a directory (must not exist or be empty), or a new .gguf file (GGUF "
     "base)",
     0},
    {0},
};

static const cli_option OPTIONS[] = {
    {.name = "dtype", .kind = CLI_STRING, .choices = "f32|f16",
     .offset = offsetof(merge_args, dtype),
     .help = "output dtype of a GGUF base merged into a directory", .default_text = "f32"},
    {.name = "type", .kind = CLI_STRING,
     .choices = "same|f32|f16|bf16|q8_0|q6_k|q5_k|q5_0|q4_k|q4_0",
     .offset = offsetof(merge_args, type),
     .help = "matrix type of a .gguf output (norms stay F32)", .default_text = "same"},
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
    int to_gguf = str_has_suffix(a.out, ".gguf");
    if (a.dtype && to_gguf)
        return cli_usage_error("merge", "--dtype applies to a directory output; a .gguf output "
                                        "takes --type");
    if (a.type && !to_gguf)
        return cli_usage_error("merge", "--type applies to a .gguf output only");
    o.gguf_dtype_f16 = a.dtype && !strcmp(a.dtype, "f16");
    o.gguf_type_same = !a.type || !strcmp(a.type, "same");
    for (size_t k = 0; k < sizeof OUT_TYPES / sizeof *OUT_TYPES; k++)
        if (a.type && !strcmp(a.type, OUT_TYPES[k].name)) o.gguf_type = OUT_TYPES[k].type;
    double t0 = clock_now_s();
    merge_report rep;
    if (merge_model(a.model, a.adapter, a.out, &o, &rep)) return cli_fail();
    if (to_gguf)
        fprintf(stderr, "medtune: merged %d projections into %s -> %s (%d tensors, %.1f MiB %s) "
                        "in %.1f s\n",
                rep.n_merged, a.model, a.out, rep.n_tensors, (double)rep.bytes / (1024.0 * 1024.0),
                rep.dtypes, clock_now_s() - t0);
    else
        fprintf(stderr,
                "medtune: merged %d projections into %s -> %s (%d tensors, %.1f MiB %s, %d "
                "shard%s) in %.1f s\n",
                rep.n_merged, a.model, a.out, rep.n_tensors,
                (double)rep.bytes / (1024.0 * 1024.0), rep.dtypes, rep.n_shards,
                rep.n_shards == 1 ? "" : "s", clock_now_s() - t0);
    return 0;
}

const cli_command MERGE_COMMAND = {
    .name = "merge",
    .summary = "fold a LoRA adapter into its base model (Hugging Face directory or GGUF file)",
    .description =
        "Folds a PEFT LoRA adapter into its base model (W' = W + scale * B A in fp32) and\n"
        "writes a Hugging Face model directory that transformers and medtune load, or\n"
        "a GGUF file that llama.cpp loads.\n\n"
        "  Hugging Face base: tensors keep their dtype (F32, F16 or BF16, merged weights\n"
        "    rounded to nearest even); config.json, generation_config.json and the\n"
        "    tokenizer files are copied.\n"
        "  GGUF base: weights are dequantized and written as F32 or F16 (--dtype);\n"
        "    config.json, generation_config.json and the tokenizer files\n"
        "    (tokenizer.json, tokenizer_config.json with the chat template,\n"
        "    special_tokens_map.json) are generated from the GGUF metadata.\n"
        "  GGUF base, OUT ending in .gguf: one GGUF file for llama.cpp and Ollama. The\n"
        "    base's metadata and tokenizer are copied, llama.cpp's tensor names and Q/K\n"
        "    row order kept. Matrices are written as --type (default `same`: each keeps\n"
        "    the base's type; unchanged ones are copied byte for byte), norms as F32. An\n"
        "    adapted matrix is dequantized, merged in fp32 and quantized once. A type\n"
        "    that cannot hold a shape (K-quants need rows that are multiples of 256) is\n"
        "    refused before anything is written.\n",
    .positionals = POSITIONALS,
    .options = OPTIONS,
    .run = run,
};
