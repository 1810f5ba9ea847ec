// medtune train CONFIG.json [--resume] [--set key=value]...
// Under mpirun every rank runs this same command (train/dist.h).
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "tools/commands.h"
#include "tools/train_mcq.h"
#include "train/train_config.h"
#include "train/trainer.h"

typedef struct {
    const char *config;
    int resume;
    cli_strings sets;
} train_args;

static const cli_positional POSITIONALS[] = {
    {"CONFIG.json", offsetof(train_args, config), "the train config (keys below, docs/config.md)",
     0},
    {0},
};

static const cli_option OPTIONS[] = {
    {.name = "resume", .kind = CLI_FLAG, .offset = offsetof(train_args, resume),
     .help = "continue from OUT/checkpoints/latest with the same data and settings (only the "
             "keys listed at the end may change)"},
    {.name = "set", .kind = CLI_STRINGS, .metavar = "key=value",
     .offset = offsetof(train_args, sets),
     .help = "override a config key (dotted path, e.g. optim.lr=1e-4)"},
    {0},
};

static int run(int argc, char **argv) {
    train_args a = {0};
    int code;
    if (cli_parse(&TRAIN_COMMAND, argc, argv, &a, &code)) return code;
    // Handlers first: MPI_Init keeps handlers that are already installed.
    trainer_install_signal_handlers();
    dist_ctx d;
    if (dist_init(&d)) {
        cli_strings_free(&a.sets);
        return cli_fail();
    }
    train_config tc;
    int rc = train_config_load(&tc, a.config, a.sets.items, (int)a.sets.n);
    cli_strings_free(&a.sets);
    // A bad config fails on every rank alike: the lowest rank alone prints it.
    int first;
    if (dist_agree(&d, rc != 0, &first, NULL)) {
        rc = first == d.rank ? -1 : TRAINER_FAILED_ELSEWHERE;
    } else {
        // Rank 0 alone scores the MCQ sets (train/trainer.c), so it alone reads them.
        train_mcq q;
        memset(&q, 0, sizeof q);
        rc = d.rank == 0 ? train_mcq_init(&q, &tc, a.config) : 0;
        if (dist_agree(&d, rc != 0, &first, NULL))
            rc = first == d.rank ? -1 : TRAINER_FAILED_ELSEWHERE;
        else
            rc = trainer_run_dist(&tc, a.resume, &d, d.rank == 0 ? &q.scorer : NULL);
        train_mcq_free(&q);
    }
    dist_free(&d);
    if (rc == TRAINER_FAILED_ELSEWHERE) return 1;
    return rc ? cli_fail() : 0;
}

// The keys, defaults and meanings of train/train_config.c's table, which docs/config.md lists too.
static void print_config_keys(FILE *out) {
    size_t n;
    const train_config_key *keys = train_config_keys(&n);
    fprintf(out, "config keys (docs/config.md):\n");
    for (size_t i = 0; i < n; i++) cli_print_key(out, keys[i].key, keys[i].def, keys[i].meaning);
    strbuf b;
    strbuf_init(&b);
    strbuf_puts(&b, "--resume accepts changes to:");
    const char *sep = " ";
    for (size_t i = 0; i < n; i++)
        if (keys[i].flags & TRAIN_KEY_RESUME_FREE) {
            strbuf_printf(&b, "%s%s", sep, keys[i].key);
            sep = ", ";
        }
    strbuf_puts(&b, ". The model and data files are compared by content, so a moved model or "
                    "shard directory still resumes.");
    if (!strbuf_failed(&b)) {
        fputc('\n', out);
        cli_print_wrapped(out, 0, b.data);
    }
    strbuf_free(&b);
}

const cli_command TRAIN_COMMAND = {
    .name = "train",
    .summary = "LoRA fine-tuning with checkpoints that resume bit-exactly",
    .description =
        "Trains a LoRA adapter on a frozen base model from shard directories made by\n"
        "`medtune prep`. Writes OUT/config.json, OUT/metrics.jsonl,\n"
        "OUT/checkpoints/step_N/ (state.h5 + PEFT adapter) and OUT/adapter/.\n"
        "SIGINT/SIGTERM: finish the step, save, exit.\n"
        "Data-parallel on several processes or machines: mpirun -np N medtune train ...\n"
        "(docs/training.md).\n",
    .positionals = POSITIONALS,
    .options = OPTIONS,
    .print_more = print_config_keys,
    .run = run,
};
