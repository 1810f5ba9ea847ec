// medtune train CONFIG.json [--resume] [--set key=value]...
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "tools/commands.h"
#include "train/train_config.h"
#include "train/trainer.h"

static void print_help(void) {
    printf(
        "usage: medtune train CONFIG.json [--resume] [--set key=value]...\n\n"
        "Trains a LoRA adapter on a frozen base model from shard directories made by\n"
        "`medtune prep`. Writes OUT/config.json, OUT/metrics.jsonl, OUT/checkpoints/step_N/\n"
        "(state.h5 + PEFT adapter) and OUT/adapter/. SIGINT/SIGTERM: finish the step, save, exit.\n\n"
        "options:\n"
        "  --resume         continue from OUT/checkpoints/latest (the same data and settings;\n"
        "                   only steps/epochs, eval_every, save_every, keep_last may change)\n"
        "  --set key=value  override a config key (dotted path, e.g. optim.lr=1e-4)\n"
        "  -h, --help       show this help\n\n"
        "config keys (defaults): model, init_adapter (none), data.train, data.val (train dir's\n"
        "val split), data.replay (none), data.replay_ratio (0), lora.r (16), lora.alpha (2r),\n"
        "lora.dropout (0.05), lora.targets (all seven), lora.use_rslora (false), optim.lr (2e-4),\n"
        "optim.beta1 (0.9), optim.beta2 (0.999), optim.eps (1e-8), optim.weight_decay (0),\n"
        "optim.grad_clip (1.0), schedule.warmup_steps (0), schedule.decay (cosine),\n"
        "schedule.min_lr_ratio (0), batch.micro_batch (4), batch.seq_len (512),\n"
        "batch.grad_accum (1), steps | epochs (1 epoch), shuffle (true), seed (42), threads (all),\n"
        "eval_every (0 = never), eval_batches (8), save_every (100), keep_last (3), out_dir,\n"
        "doc_attention (causal | document). See docs/config.md.\n");
}

int cmd_train(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    const char *config_path = NULL;
    int resume = 0, n_sets = 0;
    char **sets = calloc((size_t)argc, sizeof(char *));
    if (!sets) return cli_usage_error("train", "out of memory");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--resume")) {
            resume = 1;
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            sets[n_sets++] = argv[++i];
        } else if (!strncmp(argv[i], "--set=", 6)) {
            sets[n_sets++] = argv[i] + 6;
        } else if (argv[i][0] == '-') {
            free(sets);
            return cli_usage_error("train", "unknown option %s", argv[i]);
        } else if (!config_path) {
            config_path = argv[i];
        } else {
            free(sets);
            return cli_usage_error("train", "one CONFIG.json expected, got also %s", argv[i]);
        }
    }
    if (!config_path) {
        free(sets);
        return cli_usage_error("train", "CONFIG.json missing");
    }
    train_config tc;
    int rc = train_config_load(&tc, config_path, sets, n_sets);
    free(sets);
    if (rc) return cli_fail();
    trainer_install_signal_handlers();
    return trainer_run(&tc, resume) ? cli_fail() : 0;
}
