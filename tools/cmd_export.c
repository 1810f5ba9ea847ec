// medtune export CHECKPOINT_DIR OUT [--format peft|gguf] [--model MODEL] [--best]
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "export/export_source.h"
#include "export/gguf_adapter.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/str.h"
#include "checkpoints/run_dir.h"
#include "tools/commands.h"

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
    if (str_has_suffix(out, ".gguf")) {
        snprintf(written, n, "%s", out);
    } else {
        if (dir_create(out) || path_join(written, n, out, "adapter.gguf")) return -1;
    }
    // general.name: the base model's name, as the converter falls back to a directory name.
    char name[256];
    base_name(s->base_model, name, sizeof name - 8);
    size_t len = strlen(name);
    if (str_has_suffix(name, ".gguf")) len -= 5;
    snprintf(name + len, sizeof name - len, " LoRA");
    return gguf_adapter_write(written, &s->a, &s->mc, name);
}

typedef struct {
    const char *src, *out, *format, *model;
    int best;
} export_args;

static const cli_positional POSITIONALS[] = {
    {"CHECKPOINT_DIR", offsetof(export_args, src),
     "a checkpoint (RUN/checkpoints/step_N), a run directory or a PEFT adapter directory", 0},
    {"OUT", offsetof(export_args, out),
     "the PEFT adapter directory, or the .gguf file (or a directory for adapter.gguf)", 0},
    {0},
};

static const cli_option OPTIONS[] = {
    {.name = "format", .kind = CLI_STRING, .choices = "peft|gguf",
     .offset = offsetof(export_args, format),
     .help = "output format"},
    {.name = "model", .kind = CLI_STRING, .metavar = "MODEL",
     .offset = offsetof(export_args, model),
     .help = "base model, a Hugging Face directory or .gguf file",
     .default_text = "the run config's `model`, or the adapter's base_model_name_or_path"},
    {.name = "best", .kind = CLI_FLAG, .offset = offsetof(export_args, best),
     .help = "CHECKPOINT_DIR is a run directory: export the checkpoint that RUN/checkpoints/best "
             "names (the best evaluation of best.metric)"},
    {0},
};

static int run(int argc, char **argv) {
    export_args a = {.format = "peft"};
    int code;
    if (cli_parse(&EXPORT_COMMAND, argc, argv, &a, &code)) return code;
    int gguf = !strcmp(a.format, "gguf");
    char best[4400];
    if (a.best) {
        if (!dir_is_run(a.src))
            return cli_usage_error("export", "--best takes a run directory (with checkpoints/)");
        if (checkpoint_best(a.src, best, sizeof best)) return cli_fail();
        a.src = best;
    }
    export_source s;
    if (export_source_load(&s, a.src, a.model)) return cli_fail();
    char written[4096];
    int rc;
    if (gguf) {
        rc = write_gguf(&s, a.out, written, sizeof written);
    } else {
        snprintf(written, sizeof written, "%s", a.out);
        rc = export_peft_write(&s, a.out);
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

const cli_command EXPORT_COMMAND = {
    .name = "export",
    .summary = "checkpoint -> PEFT adapter directory or GGUF LoRA adapter",
    .description =
        "Exports a LoRA adapter. CHECKPOINT_DIR is a checkpoint (RUN/checkpoints/step_N),\n"
        "a run directory (its latest checkpoint, or RUN/adapter when it has none) or a PEFT\n"
        "adapter directory. --best: the run's best checkpoint (RUN/checkpoints/best).\n\n"
        "  peft  OUT is a directory: adapter_config.json + adapter_model.safetensors\n"
        "        (Hugging Face PEFT: PeftModel.from_pretrained, vLLM LoRARequest);\n"
        "        with a GGUF base also its tokenizer files (tokenizer.json, ...)\n"
        "  gguf  OUT is a .gguf file, or a directory that receives adapter.gguf\n"
        "        (llama.cpp: llama-cli -m base.gguf --lora adapter.gguf)\n",
    .positionals = POSITIONALS,
    .options = OPTIONS,
    .run = run,
};
