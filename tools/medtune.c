// medtune: the command-line entry point. Dispatches to one function per subcommand.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "tools/commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

// In the order of the pipeline: data, training, what a run produces, then inspection tools.
static const command COMMANDS[] = {
    {"prep", cmd_prep, "corpus files -> cleaned, tokenized train/val shard directory"},
    {"train", cmd_train, "LoRA fine-tuning with checkpoints that resume bit-exactly"},
    {"export", cmd_export, "checkpoint -> PEFT adapter directory or GGUF LoRA adapter"},
    {"merge", cmd_merge, "fold a LoRA adapter into its base model (Hugging Face directory)"},
    {"eval", cmd_eval, "perplexity on shards, or accuracy on PubMedQA/MedQA/MedMCQA/MMLU files"},
    {"generate", cmd_generate, "text from a model (+ adapter): greedy or sampled, raw prompt or chat"},
    {"report", cmd_report, "RUN_DIR/report.html: loss/val/lr/speed charts, summary, config, data"},
    {"info", cmd_info, "describe a model, adapter, shard directory or checkpoint"},
    {"tokenize", cmd_tokenize, "stdin lines -> JSON arrays of token ids (or back with --decode)"},
    {"quickstart", cmd_quickstart, "the whole pipeline on sample medical Q&A: prep, train, export, merge, answers"},
};

int cli_fail(void) {
    fprintf(stderr, "medtune: error: %s\n", err_msg());
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "medtune %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'medtune %s --help'.\n", cmd);
    va_end(ap);
    return 2;
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    return 0;
}

static void print_commands(FILE *out) {
    fprintf(out, "usage: medtune <command> [options]   (medtune <command> --help for details)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(out, "  %-12s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

// libgomp reads OMP_WAIT_POLICY once, when it is loaded. Its default spins idle threads at every
// barrier, which on a busy machine steals the cores the working threads need (measured here:
// 2.4x slower training with another job running). Unless the user chose a policy, medtune
// re-executes itself once with PASSIVE (bench/README.md has the figures).
static void omp_wait_policy_default(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
    omp_wait_policy_default(argv);
    if (argc < 2) {
        print_commands(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        print_commands(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].run(argc - 1, argv + 1);
    fprintf(stderr, "medtune: unknown command '%s'\n\n", argv[1]);
    print_commands(stderr);
    return 2;
}
