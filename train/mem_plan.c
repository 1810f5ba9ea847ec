#include "train/mem_plan.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/transformer.h"

int mem_plan_make(mem_plan *mp, const model *m, const lora_adapter *a, const train_config *tc,
                  int rows) {
    memset(mp, 0, sizeof *mp);
    const size_t f = sizeof(float), np = a->n_params;
    const int pref = tc->objective == OBJECTIVE_DPO || tc->objective == OBJECTIVE_ORPO;
    // The matrices as the model holds them (stored type, mapped or owned) and the fp32 arena.
    mp->weights = model_memory_bytes(m);
    // DPO from an init_adapter holds its reference adapter next to the trained one.
    const int ref = tc->objective == OBJECTIVE_DPO && tc->init_adapter[0];
    mp->adapter = (ref ? 4 : 2) * np * f;
    mp->optimizer = 3 * np * f;
    mp->activations = lm_plan_size(m, a, rows, tc->seq_len, tc->recompute);
    if (!mp->activations)
        return err_set("plan: batch %d x seq_len %d must be positive", rows, tc->seq_len);
    // ids, targets, positions, documents for grad_accum + 1 micro-batches (train/trainer.c);
    // preference objectives add each token's response flag and, for one micro-batch, its
    // log-probability and gradient weight (train/preference.c).
    const size_t tokens = (size_t)(tc->grad_accum + 1) * (size_t)rows * (size_t)tc->seq_len;
    const size_t micro = (size_t)rows * (size_t)tc->seq_len;
    mp->buffers = 4 * sizeof(int32_t) * tokens;
    if (pref) mp->buffers += tokens + micro * (sizeof(double) + sizeof(float));
    mp->to_allocate = mp->optimizer + mp->activations + mp->buffers;
    return 0;
}

static double mb(size_t bytes) { return (double)bytes / 1e6; }

void mem_plan_print(const mem_plan *mp, FILE *fp) {
    const size_t total = mp->weights + mp->adapter + mp->to_allocate;
    fprintf(fp,
            "medtune: memory plan: weights %.1f MB, adapter %.1f MB, optimizer %.1f MB, "
            "activations %.1f MB, buffers %.1f MB: %.1f MB\n",
            mb(mp->weights), mb(mp->adapter), mb(mp->optimizer), mb(mp->activations),
            mb(mp->buffers), mb(total));
}

long long mem_available(const char *meminfo_path) {
    FILE *fp = fopen(meminfo_path, "r");
    if (!fp) return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, "MemAvailable:", 13)) {
            char *end;
            kb = strtoll(line + 13, &end, 10);
            if (end == line + 13 || kb < 0) kb = -1;
            break;
        }
    fclose(fp);
    return kb < 0 ? -1 : kb * 1024;
}

int mem_plan_check(const mem_plan *mp, const train_config *tc, long long available) {
    if (available < 0 || (unsigned long long)available >= mp->to_allocate) return 0;
    // Activations are what a setting can shrink: name the setting that shrinks them most.
    const char *hint = tc->recompute
                           ? (tc->micro_batch > 1 ? "a smaller batch.micro_batch (with more "
                                                    "batch.grad_accum) or batch.seq_len"
                                                  : "a smaller batch.seq_len")
                           : "recompute: true (or a smaller batch.micro_batch or batch.seq_len)";
    return err_set("%s: the run needs %.1f MB more memory (activations %.1f MB, optimizer "
                   "%.1f MB), only %.1f MB is available (MemAvailable): set %s",
                   tc->out_dir, mb(mp->to_allocate), mb(mp->activations), mb(mp->optimizer),
                   (double)available / 1e6, hint);
}
