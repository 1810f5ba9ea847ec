// One optimizer step (docs/design.md §3), for every objective: read the step's micro-batches,
// accumulate their gradients in step order, clip, AdamW. What differs between the document
// objectives (train/trainer.c) and DPO/ORPO (train/trainer_pref.c) is a trainer_objective.
#include <math.h>
#include <string.h>

#include "checkpoints/run_dir.h"
#include "common/error.h"
#include "optim/schedule.h"
#include "train/trainer_internal.h"

// M = grad_accum * N micro-batches. Every rank reads all M (cheap next to forward/backward) so
// the data cursor, the dropout counter and the count the loss is a mean over stay global; it
// runs forward/backward on micro-batches m = k * N + rank only. The step's gradient is
// ((0 + g_0) + g_1) + ... in m order (the chain in train/dist.c), so N ranks with grad_accum A
// do the arithmetic of one process with N * A. Leaves the unclipped sum in t->grad_sum.
static int step_gradient(trainer *t, const trainer_objective *obj, metrics_row *row) {
    const int ga = t->tc->grad_accum, N = t->d->size, me = t->d->rank, M = ga * N;
    const int64_t rows_tokens = (int64_t)t->rows * t->tc->seq_len, W = t->stat_width;
    int64_t count = 0;
    int rc = 0;
    t->d->comm_s = 0.0;
    t->d->comm_bytes = 0;
    // Micro-batches of other ranks all go to the spare slot ga: read only to move the cursor.
    for (int m = 0; m < M && !rc; m++) {
        int64_t got = obj->read(t, (m % N == me ? m / N : ga) * rows_tokens);
        if (got < 0) rc = -1;
        count += got;
    }
    if (trainer_sync_point(t, rc, NULL)) return -1;
    for (int k = 0; k < ga; k++) {
        int64_t o = k * rows_tokens;
        lm_batch b = {t->tokens + o, t->targets + o, t->positions + o, t->doc_ids + o};
        memset(t->lora.grads, 0, t->lora.n_params * sizeof(float));
        t->plan.dropout_counter = t->st.dropout_counter + (uint64_t)(k * N + me);
        obj->micro_batch(t, &b, o, M, count, t->stats + k * W);
        dist_chain_add(t->d, t->grad_sum, t->lora.grads, t->lora.n_params, k, ga);
    }
    dist_bcast_sum(t->d, t->grad_sum, t->lora.n_params);
    dist_gather_dealt(t->d, t->stats, t->all_stats, t->gather, M, (int)W);
    row->comm_ms = 1e3 * t->d->comm_s;
    row->comm_mb = (double)t->d->comm_bytes / 1e6;
    t->st.dropout_counter += (uint64_t)M;
    row->loss = obj->finish(t, M, row);
    return 0;
}

int trainer_step(trainer *t, metrics_row *row) {
    const train_config *tc = t->tc;
    const int N = t->d->size, me = t->d->rank, M = tc->grad_accum * N;
    if (step_gradient(t, t->pref ? &trainer_pref_objective : &trainer_sft_objective, row))
        return -1;
    if (t->st.step + 1 == t->inject_nan_step) row->loss = NAN;
    row->grad_norm = grad_clip_global_norm(t->grad_sum, t->lora.n_params, tc->grad_clip);
    long long step = (long long)t->st.step + 1;
    if (!isfinite(row->loss) || !isfinite(row->grad_norm)) {
        // Every rank holds the same loss and norm: all stop here, rank 0 reports.
        t->quiet = me != 0;
        char ckpt[4400];
        const char *last =
            me != 0 || checkpoint_latest(tc->out_dir, ckpt, sizeof ckpt) ? "none" : ckpt;
        return err_set("%s: step %lld: %s is %s; stopped without saving (last good checkpoint: "
                       "%s)",
                       tc->out_dir, step, isfinite(row->loss) ? "gradient norm" : "loss",
                       isnan(isfinite(row->loss) ? row->grad_norm : row->loss) ? "NaN" : "Inf",
                       last);
    }
    schedule_config sc = {tc->optim.lr, tc->warmup_steps, t->total_steps, tc->decay,
                          tc->min_lr_ratio};
    row->lr = schedule_lr(&sc, t->st.step);
    adamw_step(&t->opt, t->lora.params, t->grad_sum, row->lr);
    t->st.step++;
    t->st.tokens_seen += (int64_t)M * t->rows * tc->seq_len;
    row->step = t->st.step;
    row->tokens = t->st.tokens_seen;
    row->world_size = N;
    return 0;
}
