#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoints/peft.h"
#include "checkpoints/run_dir.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/sha256.h"
#include "data_prep/shard_reader.h"
#include "tokenizer/tokenizer.h"
#include "train/batcher.h"
#include "train/metrics.h"
#include "model/model.h"
#include "model/transformer.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

void trainer_install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

typedef struct {
    const train_config *tc;
    model m;
    lora_adapter lora;
    adamw_state opt;
    lm_plan plan;
    shard_set train, val, replay;
    int has_val, has_replay;
    batcher data;
    train_state st;
    int64_t total_steps;
    int64_t n_val_windows;
    int32_t *tokens, *targets, *positions, *doc_ids;  // [grad_accum * micro_batch * T]
    metrics_log log;
    int64_t inject_nan_step;  // MEDTUNE_INJECT_NAN_STEP: fault injection for the test suite
} trainer;

static int check_tokenizer(trainer *t) {
    tokenizer *tok = tokenizer_load(t->tc->model);
    if (!tok) return -1;
    int rc = 0;
    const char *model_fp = tokenizer_fingerprint(tok);
    const shard_set *sets[3] = {&t->train, t->has_val ? &t->val : NULL,
                                t->has_replay ? &t->replay : NULL};
    for (int i = 0; i < 3 && !rc; i++) {
        if (!sets[i]) continue;
        if (strcmp(shard_set_tokenizer_fingerprint(sets[i]), model_fp))
            rc = err_set("%s: shards were made with a different tokenizer than %s's "
                         "(fingerprint %.12s, model %.12s); run medtune prep with this model",
                         sets[i]->dir, t->tc->model, shard_set_tokenizer_fingerprint(sets[i]),
                         model_fp);
    }
    tokenizer_free(tok);
    return rc;
}

static int open_data(trainer *t) {
    const train_config *tc = t->tc;
    if (shard_set_open(&t->train, tc->data_train, "train")) return -1;
    const char *val_dir = tc->data_val[0] ? tc->data_val : tc->data_train;
    if (shard_set_open(&t->val, val_dir, "val")) return -1;
    t->has_val = 1;
    t->n_val_windows = shard_set_n_windows(&t->val, tc->seq_len);
    if (t->n_val_windows < 0) return -1;
    if (tc->data_replay[0]) {
        if (shard_set_open(&t->replay, tc->data_replay, "train")) return -1;
        t->has_replay = 1;
    }
    if (check_tokenizer(t)) return -1;
    if (batcher_init(&t->data, &t->train, t->has_replay ? &t->replay : NULL, tc->replay_ratio,
                     tc->seq_len, tc->shuffle, tc->seed,
                     tc->doc_attention == DOC_ATTENTION_DOCUMENT))
        return -1;
    if (tc->steps > 0) {
        t->total_steps = tc->steps;
    } else {
        // An epoch is one pass over the train windows; replay windows come on top.
        double train_per_step =
            (double)tc->micro_batch * tc->grad_accum * (1.0 - t->data.replay_ratio);
        t->total_steps = (int64_t)ceil((double)tc->epochs * (double)t->data.n_train /
                                       train_per_step);
    }
    return 0;
}

static int init_adapter(trainer *t) {
    const train_config *tc = t->tc;
    if (!tc->init_adapter[0]) {
        if (lora_adapter_init(&t->lora, &t->m.cfg, &tc->lora)) return -1;
        lora_adapter_init_peft(&t->lora, tc->seed);
        return 0;
    }
    lora_config ac;
    if (peft_adapter_read_config(tc->init_adapter, &ac)) return -1;
    if (ac.r != tc->lora.r || ac.targets != tc->lora.targets || ac.alpha != tc->lora.alpha ||
        ac.use_rslora != tc->lora.use_rslora)
        return err_set("%s: the adapter has r=%d alpha=%g rslora=%d and other targets than the "
                       "config's lora section (r=%d alpha=%g rslora=%d): make lora.* match it",
                       tc->init_adapter, ac.r, ac.alpha, ac.use_rslora, tc->lora.r,
                       tc->lora.alpha, tc->lora.use_rslora);
    if (lora_adapter_init(&t->lora, &t->m.cfg, &tc->lora)) return -1;
    return peft_adapter_read_weights(tc->init_adapter, &t->lora);
}

static int restore(trainer *t) {
    const train_config *tc = t->tc;
    char ckpt[4400], path[4500];
    if (checkpoint_clean_partial(tc->out_dir) || checkpoint_latest(tc->out_dir, ckpt, sizeof ckpt))
        return -1;
    snprintf(path, sizeof path, "%s/state.h5", ckpt);
    train_state saved;
    if (train_state_read_meta(path, &saved)) return -1;
    int rc = 0;
    cJSON *json = cJSON_Parse(saved.config_json);
    train_config old;
    if (train_state_check_resume(&saved, ckpt)) {
        rc = -1;
    } else if (!json || train_config_from_json(&old, json, path)) {
        rc = err_set("%s: the stored config is unreadable", path);
    } else if (train_config_compare_for_resume(&old, tc)) {
        rc = err_prefix("cannot resume %s", ckpt);
    } else if (strcmp(saved.model_fingerprint, t->st.model_fingerprint)) {
        rc = err_set("cannot resume %s: the base model %s differs from the one it was trained on",
                     ckpt, tc->model);
    } else if (strcmp(saved.data_fingerprint, t->st.data_fingerprint)) {
        rc = err_set("cannot resume %s: the shards in %s differ from the ones it was trained on",
                     ckpt, tc->data_train);
    } else if (batcher_restore(&t->data, &saved.cursor)) {
        rc = err_prefix("%s", path);
    } else if (saved.n_permutation != t->data.n_train ||
               memcmp(saved.permutation, t->data.perm,
                      (size_t)saved.n_permutation * sizeof(uint64_t))) {
        rc = err_set("%s: the stored window order differs from the one this medtune computes",
                     path);
    } else {
        rc = train_state_read_tensors(path, &t->lora, &t->opt);
    }
    cJSON_Delete(json);
    if (!rc && strcmp(saved.medtune_version, MEDTUNE_VERSION))
        fprintf(stderr, "medtune: warning: %s was written by medtune %s, this is %s: the run "
                        "continues, but equality with an uninterrupted run is promised only "
                        "for the same build\n",
                ckpt, saved.medtune_version, MEDTUNE_VERSION);
    if (!rc) {
        t->st.step = saved.step;
        t->st.tokens_seen = saved.tokens_seen;
        t->st.elapsed_s = saved.elapsed_s;
        t->st.cursor = saved.cursor;
        t->st.dropout_counter = saved.dropout_counter;
    }
    train_state_free(&saved);
    return rc;
}

static void data_fingerprint(trainer *t, char out[65]) {
    sha256_ctx c;
    sha256_init(&c);
    const char *fp = shard_set_fingerprint(&t->train);
    sha256_update(&c, fp, strlen(fp));
    if (t->has_replay) {
        fp = shard_set_fingerprint(&t->replay);
        sha256_update(&c, fp, strlen(fp));
    }
    uint8_t d[32];
    sha256_final(&c, d);
    sha256_digest_to_hex(d, out);
}

static int save_checkpoint(trainer *t) {
    t->st.cursor = t->data.cur;
    t->st.permutation = t->data.perm;
    t->st.n_permutation = t->data.n_train;
    t->st.replay_permutation = t->data.replay_perm;
    t->st.n_replay_permutation = t->data.n_replay;
    int rc = checkpoint_save(t->tc->out_dir, &t->st, &t->lora, &t->opt, t->tc->model,
                             t->tc->keep_last);
    t->st.permutation = t->st.replay_permutation = NULL;  // owned by the batcher
    if (!rc) rc = metrics_log_sync(&t->log);
    return rc;
}

// Mean loss over the fixed, evenly spaced validation windows.
static int evaluate(trainer *t, double *val_loss) {
    const train_config *tc = t->tc;
    const int mb = tc->micro_batch, T = tc->seq_len;
    int64_t want = tc->eval_batches * mb;
    int64_t n = want < t->n_val_windows ? want : t->n_val_windows;
    double sum = 0.0;
    int64_t count = 0;
    t->plan.training = 0;
    for (int64_t k0 = 0; k0 < n; k0 += mb) {
        for (int row = 0; row < mb; row++) {
            int64_t k = k0 + row;
            if (k < n) {
                uint64_t i = (uint64_t)(k * t->n_val_windows / n);
                if (batcher_window(&t->data, &t->val, i, row, t->tokens, t->targets,
                                   t->positions, t->doc_ids) < 0)
                    return -1;
            } else {
                for (int j = 0; j < T; j++) {
                    t->tokens[(int64_t)row * T + j] = 0;
                    t->targets[(int64_t)row * T + j] = -1;
                    t->positions[(int64_t)row * T + j] = j;
                    t->doc_ids[(int64_t)row * T + j] = 0;
                }
            }
        }
        lm_batch b = {t->tokens, t->targets, t->positions, t->doc_ids};
        sum += lm_forward(&t->plan, &b, 0, 0.0f, &count);
    }
    t->plan.training = 1;
    *val_loss = count ? sum / (double)count : NAN;
    return 0;
}

static void format_eta(char *out, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) snprintf(out, n, "?");
    else if (s >= 3600) snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

static void show_progress(const trainer *t, const metrics_row *r, double rate_steps, int tty,
                          int final) {
    char eta[32];
    format_eta(eta, sizeof eta, (double)(t->total_steps - r->step) / rate_steps);
    char line[256];
    snprintf(line, sizeof line,
             "step %lld/%lld | loss %.4f | lr %.3g | grad norm %.3f | %.0f tok/s | ETA %s",
             (long long)r->step, (long long)t->total_steps, r->loss, r->lr, r->grad_norm,
             r->tok_per_s, eta);
    if (tty) fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
    else fprintf(stderr, "%s\n", line);
}

// One optimizer step: grad_accum micro-batches, loss averaged over all their targets.
static int train_step(trainer *t, metrics_row *row) {
    const train_config *tc = t->tc;
    const int mb = tc->micro_batch, T = tc->seq_len, ga = tc->grad_accum;
    const int64_t rows_tokens = (int64_t)mb * T;
    int64_t n_targets = 0;
    for (int k = 0; k < ga; k++) {
        int64_t got = batcher_next(&t->data, mb, t->tokens + k * rows_tokens,
                                   t->targets + k * rows_tokens, t->positions + k * rows_tokens,
                                   t->doc_ids + k * rows_tokens);
        if (got < 0) return -1;
        n_targets += got;
    }
    memset(t->lora.grads, 0, t->lora.n_params * sizeof(float));
    double loss_sum = 0.0;
    int64_t counted = 0;
    const float scale = n_targets ? 1.0f / (float)n_targets : 0.0f;
    for (int k = 0; k < ga; k++) {
        lm_batch b = {t->tokens + k * rows_tokens, t->targets + k * rows_tokens,
                      t->positions + k * rows_tokens, t->doc_ids + k * rows_tokens};
        t->plan.dropout_counter = t->st.dropout_counter++;
        loss_sum += lm_forward(&t->plan, &b, 1, scale, &counted);
        lm_backward(&t->plan);
    }
    if (t->st.step + 1 == t->inject_nan_step) loss_sum = NAN;
    row->loss = counted ? loss_sum / (double)counted : 0.0;
    row->grad_norm = grad_clip_global_norm(t->lora.grads, t->lora.n_params, tc->grad_clip);
    long long step = (long long)t->st.step + 1;
    if (!isfinite(row->loss) || !isfinite(row->grad_norm)) {
        char ckpt[4400];
        const char *last = checkpoint_latest(tc->out_dir, ckpt, sizeof ckpt) ? "none" : ckpt;
        return err_set("%s: step %lld: %s is %s; stopped without saving (last good checkpoint: "
                       "%s)",
                       tc->out_dir, step, isfinite(row->loss) ? "gradient norm" : "loss",
                       isnan(isfinite(row->loss) ? row->grad_norm : row->loss) ? "NaN" : "Inf",
                       last);
    }
    schedule_config sc = {tc->optim.lr, tc->warmup_steps, t->total_steps, tc->decay,
                          tc->min_lr_ratio};
    row->lr = schedule_lr(&sc, t->st.step);
    adamw_step(&t->opt, t->lora.params, t->lora.grads, row->lr);
    t->st.step++;
    t->st.tokens_seen += (int64_t)ga * rows_tokens;
    row->step = t->st.step;
    row->tokens = t->st.tokens_seen;
    return 0;
}

static int run_loop(trainer *t) {
    const train_config *tc = t->tc;
    const int tty = isatty(STDERR_FILENO);
    double last_print = clock_now_s(), session_start = clock_now_s(), session_steps = 0;
    double elapsed_base = t->st.elapsed_s;
    int64_t saved_at_step = -1;
    if (t->st.step == 0 && tc->eval_every > 0 && t->n_val_windows > 0) {
        double vl;
        if (evaluate(t, &vl)) return -1;
        if (metrics_log_eval(&t->log, 0, vl, t->st.elapsed_s)) return -1;
        fprintf(stderr, "step 0: val loss %.4f, val ppl %.3f\n", vl, exp(vl));
    }
    while (t->st.step < t->total_steps && !stop_requested) {
        double t0 = clock_now_s();
        metrics_row row = {0};
        if (train_step(t, &row)) return -1;
        double dt = clock_now_s() - t0;
        session_steps++;
        t->st.elapsed_s = elapsed_base + (clock_now_s() - session_start);
        row.tok_per_s = (double)tc->grad_accum * tc->micro_batch * tc->seq_len / dt;
        row.elapsed_s = t->st.elapsed_s;
        row.has_val = 0;
        if (tc->eval_every > 0 && t->st.step % tc->eval_every == 0 && t->n_val_windows > 0) {
            if (evaluate(t, &row.val_loss)) return -1;
            row.has_val = 1;
        }
        if (metrics_log_step(&t->log, &row)) return -1;
        double rate = session_steps / (clock_now_s() - session_start);
        int last = t->st.step == t->total_steps;
        if (tty || clock_now_s() - last_print >= 10.0 || last || row.has_val) {
            show_progress(t, &row, rate, tty, last);
            if (row.has_val && !tty)
                fprintf(stderr, "step %lld: val loss %.4f, val ppl %.3f\n", (long long)row.step,
                        row.val_loss, exp(row.val_loss));
            last_print = clock_now_s();
        }
        if (tc->save_every > 0 && t->st.step % tc->save_every == 0) {
            if (save_checkpoint(t)) return -1;
            saved_at_step = t->st.step;
        }
    }
    if (tty) fputc('\n', stderr);
    if (saved_at_step != t->st.step && save_checkpoint(t)) return -1;
    if (stop_requested) {
        fprintf(stderr, "medtune: stopped at step %lld; checkpoint written; continue with "
                        "--resume\n",
                (long long)t->st.step);
        return 0;
    }
    if (run_write_final_adapter(tc->out_dir, &t->lora, tc->model)) return -1;
    fprintf(stderr, "medtune: done: %lld steps, %lld tokens in %.1f s; adapter in %s/adapter\n",
            (long long)t->st.step, (long long)t->st.tokens_seen, t->st.elapsed_s, tc->out_dir);
    return 0;
}

static int write_resolved_config(trainer *t) {
    cJSON *j = train_config_to_json(t->tc);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return err_set("%s: out of memory", t->tc->out_dir);
    char path[4400];
    snprintf(path, sizeof path, "%s/config.json", t->tc->out_dir);
    int rc = file_write_atomic(path, text, strlen(text));
    free(t->st.config_json);
    t->st.config_json = text;  // checkpoints store the config the run continues with
    return rc;
}

static void trainer_free(trainer *t) {
    metrics_log_close(&t->log);
    free(t->tokens);
    free(t->targets);
    free(t->positions);
    free(t->doc_ids);
    batcher_free(&t->data);
    if (t->has_replay) shard_set_close(&t->replay);
    if (t->has_val) shard_set_close(&t->val);
    shard_set_close(&t->train);
    lm_plan_free(&t->plan);
    adamw_free(&t->opt);
    lora_adapter_free(&t->lora);
    model_free(&t->m);
    free(t->st.config_json);
}

int trainer_run(const train_config *tc, int resume) {
    trainer t;
    memset(&t, 0, sizeof t);
    t.tc = tc;
    const char *inject = getenv("MEDTUNE_INJECT_NAN_STEP");
    t.inject_nan_step = inject ? atoll(inject) : 0;
    if (tc->threads > 0) omp_set_num_threads(tc->threads);
    char latest[4400];
    snprintf(latest, sizeof latest, "%s/checkpoints/latest", tc->out_dir);
    if (!resume && path_exists(latest))
        return err_set("%s: already holds a run (checkpoints/latest exists): pass --resume to "
                       "continue it, or choose another out_dir",
                       tc->out_dir);
    if (dir_create(tc->out_dir)) return -1;
    int rc = model_load(&t.m, tc->model);
    if (!rc && tc->seq_len > t.m.cfg.max_position_embeddings && t.m.cfg.max_position_embeddings > 0)
        rc = err_set("batch.seq_len: %d exceeds the model's context of %d positions", tc->seq_len,
                     t.m.cfg.max_position_embeddings);
    rc = rc || open_data(&t) || init_adapter(&t) ||
             adamw_init(&t.opt, &tc->optim, t.lora.n_params) ||
             lm_plan_init(&t.plan, &t.m, &t.lora, tc->micro_batch, tc->seq_len);
    if (!rc) {
        size_t n = (size_t)tc->grad_accum * tc->micro_batch * tc->seq_len;
        t.tokens = malloc(n * sizeof(int32_t));
        t.targets = malloc(n * sizeof(int32_t));
        t.positions = malloc(n * sizeof(int32_t));
        t.doc_ids = malloc(n * sizeof(int32_t));
        if (!t.tokens || !t.targets || !t.positions || !t.doc_ids)
            rc = err_set("train: out of memory for batches");
    }
    if (!rc) {
        t.plan.training = 1;
        t.plan.dropout_seed = tc->seed;
        t.st.rng_seed = tc->seed;
        t.st.threads = omp_get_max_threads();
        model_fingerprint(&t.m, t.st.model_fingerprint);
        data_fingerprint(&t, t.st.data_fingerprint);
        rc = resume ? restore(&t) : checkpoint_clean_partial(tc->out_dir);
    }
    if (!rc) rc = write_resolved_config(&t);
    if (!rc) rc = metrics_log_open(&t.log, tc->out_dir, t.st.step);
    if (!rc) {
        fprintf(stderr,
                "medtune: training %s: %lld steps of %d x %d x %d tokens, LoRA r=%d on %zu "
                "parameters, %d threads%s\n",
                tc->model, (long long)t.total_steps, tc->grad_accum, tc->micro_batch,
                tc->seq_len, tc->lora.r, t.lora.n_params, omp_get_max_threads(),
                resume ? ", resumed" : "");
        if (resume)
            fprintf(stderr, "medtune: resuming at step %lld\n", (long long)t.st.step);
        if (tc->eval_every > 0 && t.n_val_windows == 0)
            fprintf(stderr, "medtune: warning: %s: the val split has no window of %d tokens; "
                            "no evaluation\n",
                    t.val.dir, tc->seq_len + 1);
        rc = run_loop(&t);
    }
    trainer_free(&t);
    return rc ? -1 : 0;
}
