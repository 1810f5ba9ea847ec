// medtune export CHECKPOINT_DIR OUT [--format peft|gguf] [--model MODEL]
#include <stdio.h>
#include <string.h>

#include "export/export_source.h"
#include "export/gguf_adapter.h"
#include "checkpoints/peft.h"
#include "common/error.h"
#include "common/fileio.h"
#include "tools/commands.h"

static void print_help(void) {
    printf("usage: medtune export CHECKPOINT_DIR OUT [--format peft|gguf] [--model MODEL]\n\n"
           "Exports a LoRA adapter. CHECKPOINT_DIR is a checkpoint (RUN/checkpoints/step_N),\n"
           "a run directory (its latest checkpoint, or RUN/adapter when it has none) or a PEFT\n"
           "adapter directory.\n\n"
           "  peft  OUT is a directory: adapter_config.json + adapter_model.safetensors\n"
           "        (Hugging Face PEFT: PeftModel.from_pretrained, vLLM LoRARequest)\n"
           "  gguf  OUT is a .gguf file, or a directory that receives adapter.gguf\n"
           "        (llama.cpp: llama-cli -m base.gguf --lora adapter.gguf)\n\n"
           "options:\n"
           "  --format peft|gguf  output format (default: peft)\n"
           "  --model MODEL       base model, a Hugging Face directory or .gguf file (default:\n"
           "                      the run config's `model`, or the adapter's\n"
           "                      base_model_name_or_path)\n"
           "  -h, --help          show this help\n");
}

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

// The last path component of `path` (trailing slashes ignored) into out.
static void base_name(const char *path, char *out, size_t n) {
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/') end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/') start--;
    size_t k = end - start < n - 1 ? end - start : n - 1;
    memcpy(out, path + start, k);
    out[k] = '\0';
}

static int write_gguf(const export_source *s, const char *out, char *written, size_t n) {
    if (has_suffix(out, ".gguf")) {
        snprintf(written, n, "%s", out);
    } else {
        if (dir_create(out) || path_join(written, n, out, "adapter.gguf")) return -1;
    }
    // general.name: the base model's name, as the converter falls back to a directory name.
    char name[256];
    base_name(s->base_model, name, sizeof name - 8);
    size_t len = strlen(name);
    if (has_suffix(name, ".gguf")) len -= 5;
    snprintf(name + len, sizeof name - len, " LoRA");
    return gguf_adapter_write(written, &s->a, &s->mc, name);
}

int cmd_export(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    const char *src = NULL, *out = NULL, *format = "peft", *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--format") || !strcmp(argv[i], "--model")) {
            if (i + 1 >= argc) return cli_usage_error("export", "%s needs a value", argv[i]);
            *(argv[i][2] == 'f' ? &format : &model) = argv[i + 1];
            i++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("export", "unknown option '%s'", argv[i]);
        } else if (!src) {
            src = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            return cli_usage_error("export", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!src || !out) return cli_usage_error("export", "needs CHECKPOINT_DIR and OUT");
    int gguf = !strcmp(format, "gguf");
    if (!gguf && strcmp(format, "peft"))
        return cli_usage_error("export", "--format must be peft or gguf, not '%s'", format);
    export_source s;
    if (export_source_load(&s, src, model)) return cli_fail();
    char written[4096];
    int rc;
    if (gguf) {
        rc = write_gguf(&s, out, written, sizeof written);
    } else {
        snprintf(written, sizeof written, "%s", out);
        rc = peft_adapter_write(out, &s.a, s.base_model);
    }
    if (rc) {
        export_source_free(&s);
        return cli_fail();
    }
    char step[48] = "";
    if (s.step >= 0) snprintf(step, sizeof step, " (step %lld)", (long long)s.step);
    fprintf(stderr,
            "medtune: exported %s%s -> %s (%s; r %d, alpha %g, scale %g, %zu parameters, base "
            "%s)\n",
            s.path, step, written, gguf ? "GGUF LoRA" : "PEFT", s.a.cfg.r, (double)s.a.cfg.alpha,
            (double)s.a.scale, s.a.n_params, s.base_model);
    export_source_free(&s);
    return 0;
}
