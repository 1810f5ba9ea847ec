// medtune merge MODEL ADAPTER_DIR OUT_DIR [--dtype f32|f16] [--max-shard-size SIZE]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export/merge.h"
#include "common/error.h"
#include "common/fileio.h"
#include "tools/commands.h"

static void print_help(void) {
    printf("usage: medtune merge MODEL ADAPTER_DIR OUT_DIR [--dtype f32|f16] "
           "[--max-shard-size SIZE]\n\n"
           "Folds a PEFT LoRA adapter into its base model (W' = W + scale * B A in fp32) and\n"
           "writes a Hugging Face model directory that transformers and medtune load.\n"
           "MODEL is a Hugging Face directory or a .gguf file; OUT_DIR must not exist or be\n"
           "empty.\n\n"
           "  Hugging Face base: tensors keep their dtype (F32, F16 or BF16, merged weights\n"
           "    rounded to nearest even); config.json, generation_config.json and the\n"
           "    tokenizer files are copied.\n"
           "  GGUF base: weights are dequantized and written as F32 or F16 (--dtype);\n"
           "    config.json and generation_config.json are generated from the GGUF metadata;\n"
           "    no tokenizer files are written (use the GGUF's tokenizer or the original\n"
           "    model's tokenizer files).\n\n"
           "options:\n"
           "  --dtype f32|f16        output dtype for GGUF bases (default: f32)\n"
           "  --max-shard-size SIZE  shard model.safetensors above SIZE bytes; suffixes K, M, G\n"
           "                         (default: 2G)\n"
           "  -h, --help             show this help\n");
}

// "2G", "500M", "4096" -> bytes; 0 on a malformed value.
static uint64_t parse_size(const char *s) {
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

int cmd_merge(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    const char *pos[3] = {NULL, NULL, NULL}, *dtype = NULL;
    int n_pos = 0;
    merge_options o = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dtype") || !strcmp(argv[i], "--max-shard-size")) {
            if (i + 1 >= argc) return cli_usage_error("merge", "%s needs a value", argv[i]);
            if (argv[i][2] == 'd') {
                dtype = argv[++i];
            } else if (!(o.max_shard_bytes = parse_size(argv[++i]))) {
                return cli_usage_error("merge", "--max-shard-size: '%s' is not a size like 2G",
                                       argv[i]);
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("merge", "unknown option '%s'", argv[i]);
        } else if (n_pos < 3) {
            pos[n_pos++] = argv[i];
        } else {
            return cli_usage_error("merge", "unexpected argument '%s'", argv[i]);
        }
    }
    if (n_pos < 3) return cli_usage_error("merge", "needs MODEL, ADAPTER_DIR and OUT_DIR");
    if (dtype && strcmp(dtype, "f32") && strcmp(dtype, "f16"))
        return cli_usage_error("merge", "--dtype must be f32 or f16, not '%s'", dtype);
    if (dtype && path_is_dir(pos[0])) {
        err_set("%s: --dtype applies to GGUF bases only; a Hugging Face base keeps its dtype",
                pos[0]);
        return cli_fail();
    }
    o.gguf_dtype_f16 = dtype && !strcmp(dtype, "f16");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    merge_report rep;
    if (merge_model(pos[0], pos[1], pos[2], &o, &rep)) return cli_fail();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr,
            "medtune: merged %d projections into %s -> %s (%d tensors, %.1f MiB %s, %d "
            "shard%s) in %.1f s\n",
            rep.n_merged, pos[0], pos[2], rep.n_tensors, (double)rep.bytes / (1024.0 * 1024.0),
            rep.dtypes, rep.n_shards, rep.n_shards == 1 ? "" : "s", s);
    return 0;
}
