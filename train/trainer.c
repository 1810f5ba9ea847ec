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
#include "train/dist.h"
#include "train/mem_plan.h"
#include "train/metrics.h"
#include "model/model.h"
#include "model/transformer.h"
#include "train/trainer_internal.h"

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
    if (tc->data_replay[0]) {
        if (shard_set_open(&t->replay, tc->data_replay, "train")) return -1;
        t->has_replay = 1;
    }
    if (check_tokenizer(t)) return -1;
    if (t->pref) {
        if (trainer_pref_open(t)) return -1;
    } else if (t->train.pairs || t->val.pairs) {
        return err_set("%s: holds preference pairs: objective %s trains on documents; set "
                       "objective to dpo or orpo",
                       t->train.pairs ? t->train.dir : t->val.dir,
                       tc->objective == OBJECTIVE_CPT ? "cpt" : "sft");
    } else if ((t->n_val_windows = shard_set_n_windows(&t->val, tc->seq_len)) < 0 ||
               batcher_init(&t->data, &t->train, t->has_replay ? &t->replay : NULL, tc->replay_ratio,
                     tc->seq_len, tc->shuffle, tc->seed,
                     tc->doc_attention == DOC_ATTENTION_DOCUMENT, t->m.cfg.vocab_size)) {
        return -1;
    }
    if (tc->steps > 0) {
        t->total_steps = tc->steps;
    } else {
        // An epoch is one pass over the train windows; replay windows come on top.
        double train_per_step = (double)tc->micro_batch * tc->grad_accum * t->d->size *
                                (1.0 - t->data.replay_ratio);
        t->total_steps = (int64_t)ceil((double)tc->epochs * (double)t->data.n_train /
                                       train_per_step);
    }
    return 0;
}

static int init_adapter(trainer *t) {
    const train_config *tc = t->tc;
    // Rank 0 alone reads an initial adapter; the others receive its weights (share_state).
    if (!tc->init_adapter[0] || t->d->rank != 0) {
        // Targets are checked against the model here: name the model in the error.
        if (lora_adapter_init(&t->lora, &t->m.cfg, &tc->lora)) return err_prefix("%s", tc->model);
        lora_adapter_init_peft(&t->lora, tc->seed);
        return 0;
    }
    lora_config ac;
    if (peft_adapter_read_config(tc->init_adapter, &ac)) return -1;
    model_arch arch = t->m.cfg.arch;
    if (ac.r != tc->lora.r ||
        lora_targets_resolve(ac.targets, arch) != lora_targets_resolve(tc->lora.targets, arch) ||
        ac.alpha != tc->lora.alpha ||
        ac.use_rslora != tc->lora.use_rslora)
        return err_set("%s: the adapter has r=%d alpha=%g rslora=%d and other targets than the "
                       "config's lora section (r=%d alpha=%g rslora=%d): make lora.* match it",
                       tc->init_adapter, ac.r, ac.alpha, ac.use_rslora, tc->lora.r,
                       tc->lora.alpha, tc->lora.use_rslora);
    if (lora_adapter_init(&t->lora, &t->m.cfg, &tc->lora)) return err_prefix("%s", tc->model);
    return peft_adapter_read_weights(tc->init_adapter, &t->lora);
}

// DPO's reference is the initial policy (TRL's rule): the base alone, or with init_adapter
// the base with that adapter frozen, a copy of the adapter's weights only. Rank 0 reads it
// (init_adapter above); share_state sends it to the others.
static int init_reference(trainer *t) {
    const train_config *tc = t->tc;
    if (tc->objective != OBJECTIVE_DPO || !tc->init_adapter[0]) return 0;
    if (lora_adapter_init(&t->ref_lora, &t->m.cfg, &tc->lora)) return -1;
    t->has_ref_lora = 1;
    if (t->d->rank == 0)
        memcpy(t->ref_lora.params, t->lora.params, t->lora.n_params * sizeof(float));
    return 0;
}

static int restore(trainer *t) {
    const train_config *tc = t->tc;
    char ckpt[4400], path[4500];
    if (checkpoint_clean_partial(tc->out_dir) || checkpoint_latest(tc->out_dir, ckpt, sizeof ckpt))
        return -1;
    snprintf(path, sizeof path, "%s/state.h5", ckpt);
    train_state saved;
    if (train_state_read_meta(path, &saved)) return -1;
    train_state_warn_unchecked(&saved, path);
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
        t->st.best_step = saved.best_step;
        t->st.best_score = saved.best_score;
        t->st.evals_since_best = saved.evals_since_best;
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

static int save_checkpoint(trainer *t, int is_best) {
    t->st.cursor = t->data.cur;
    t->st.permutation = t->data.perm;
    t->st.n_permutation = t->data.n_train;
    t->st.replay_permutation = t->data.replay_perm;
    t->st.n_replay_permutation = t->data.n_replay;
    int rc = checkpoint_save(t->tc->out_dir, &t->st, &t->lora, &t->opt, t->tc->model,
                             t->tc->keep_last, is_best);
    t->st.permutation = t->st.replay_permutation = NULL;  // owned by the batcher
    if (!rc) rc = metrics_log_sync(&t->log);
    return rc;
}

int trainer_sync_point(trainer *t, int rc, int *stop) {
    int first;
    if (!dist_agree(t->d, rc != 0, &first, stop)) return 0;
    t->quiet = first != t->d->rank;
    return -1;
}

static int evaluate(trainer *t, double *val_loss);

static int evaluate_loss(trainer *t, metrics_row *r) {
    if (!t->pref) return evaluate(t, &r->val_loss);
    r->n_pref = pref_n_metrics(t->tc->objective);
    r->pref_names = PREF_METRIC_NAMES;
    r->val_pref = t->val_pref_metrics;
    return trainer_pref_evaluate(t, &r->val_loss);
}

static int64_t eval_chunks(const trainer *t) {
    int64_t want = t->tc->eval_batches * t->tc->micro_batch;
    int64_t n = want < t->n_val_windows ? want : t->n_val_windows;
    return (n + t->tc->micro_batch - 1) / t->tc->micro_batch;
}

// Mean loss over the fixed, evenly spaced validation windows. Chunks of micro_batch windows are
// dealt to ranks round-robin and their sums folded in chunk order, as one process adds them.
static int evaluate(trainer *t, double *val_loss) {
    const train_config *tc = t->tc;
    const int mb = tc->micro_batch, T = tc->seq_len, N = t->d->size;
    int64_t want = tc->eval_batches * mb;
    int64_t n = want < t->n_val_windows ? want : t->n_val_windows;
    int64_t n_chunks = eval_chunks(t);
    int rc = 0;
    t->plan.training = 0;
    for (int64_t j = t->d->rank; j < n_chunks && !rc; j += N) {
        for (int row = 0; row < mb && !rc; row++) {
            int64_t k = j * mb + row;
            if (k < n) {
                uint64_t i = (uint64_t)(k * t->n_val_windows / n);
                rc = batcher_window(&t->data, &t->val, i, row, t->tokens, t->targets,
                                    t->positions, t->doc_ids) < 0;
            } else {
                for (int p = 0; p < T; p++) {
                    t->tokens[(int64_t)row * T + p] = 0;
                    t->targets[(int64_t)row * T + p] = -1;
                    t->positions[(int64_t)row * T + p] = p;
                    t->doc_ids[(int64_t)row * T + p] = 0;
                }
            }
        }
        if (rc) break;
        lm_batch b = {t->tokens, t->targets, t->positions, t->doc_ids};
        int64_t count = 0;
        double *mine = t->stats + 2 * (j / N);
        mine[0] = lm_forward(&t->plan, &b, 0, 0.0f, &count);
        mine[1] = (double)count;
    }
    t->plan.training = 1;
    if (trainer_sync_point(t, rc ? -1 : 0, NULL)) return -1;
    dist_gather_dealt(t->d, t->stats, t->val_stats, t->gather, n_chunks, 2);
    double sum = 0.0;
    int64_t count = 0;
    for (int64_t j = 0; j < n_chunks; j++) {
        sum += t->val_stats[2 * j];
        count += (int64_t)t->val_stats[2 * j + 1];
    }
    *val_loss = count ? sum / (double)count : NAN;
    return 0;
}

// Val loss (when the val split has windows) and every eval_mcq set into r. Rank 0 alone scores
// the MCQ sets (they are small next to training) and sends the accuracies to the others, so
// every rank holds the numbers of one process and takes the same best / early-stop decisions.
static int evaluate_all(trainer *t, metrics_row *r) {
    r->has_val = 1;
    r->has_val_loss = t->n_val_windows > 0;
    if (r->has_val_loss && evaluate_loss(t, r)) return -1;
    int n = t->tc->n_eval_mcq, rc = 0;
    for (int i = 0; i < n && t->d->rank == 0 && !rc; i++)
        rc = t->mcq->score(t->mcq->ctx, i, &t->m, &t->lora, &t->mcq_acc[i], &t->mcq_acc_norm[i]);
    if (trainer_sync_point(t, rc, NULL)) return -1;
    dist_bcast_bytes(t->d, t->mcq_acc, sizeof t->mcq_acc);
    dist_bcast_bytes(t->d, t->mcq_acc_norm, sizeof t->mcq_acc_norm);
    r->n_mcq = n;
    r->mcq_sets = t->tc->eval_mcq;
    r->mcq_acc = t->mcq_acc;
    r->mcq_acc_norm = t->mcq_acc_norm;
    return 0;
}

// Updates the best-so-far with the evaluation r of step >= 1 (docs/training.md, "Best
// checkpoint"): an improvement is a strictly better finite score (ties are not); anything else
// adds one to the patience counter. Returns 1 when r is the new best.
static int best_update(trainer *t, const metrics_row *r) {
    if (!t->tc->best_metric[0]) return 0;
    double v = t->best_mcq >= 0 ? t->mcq_acc[t->best_mcq] : r->has_val_loss ? r->val_loss : NAN;
    int better = isfinite(v) &&
                 (t->st.best_step == 0 ||
                  (t->best_higher ? v > t->st.best_score : v < t->st.best_score));
    if (!better) {
        t->st.evals_since_best++;
        return 0;
    }
    t->st.best_step = r->step;
    t->st.best_score = v;
    t->st.evals_since_best = 0;
    return 1;
}

static int patience_out(const trainer *t) {
    return t->tc->best_patience > 0 && t->st.best_step > 0 &&
           t->st.evals_since_best >= t->tc->best_patience;
}

static void print_eval(const trainer *t, const metrics_row *r) {
    if (r->has_val_loss && r->val_pref)
        fprintf(stderr, "step %lld: val loss %.4f, reward accuracy %.4f, margin %.4g\n",
                (long long)r->step, r->val_loss, r->val_pref[PREF_M_REWARDS_ACCURACIES],
                r->val_pref[PREF_M_REWARDS_MARGINS]);
    else if (r->has_val_loss)
        fprintf(stderr, "step %lld: val loss %.4f, val ppl %.3f\n", (long long)r->step,
                r->val_loss, exp(r->val_loss));
    for (int i = 0; i < r->n_mcq; i++)
        fprintf(stderr, "step %lld: %s acc %.4f, acc_norm %.4f\n", (long long)r->step,
                t->tc->eval_mcq[i].name, r->mcq_acc[i], r->mcq_acc_norm[i]);
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
             "step %lld/%lld | loss %.4f | lr %.3g | grad norm %.3f | %.0f tok/s | %d rank%s | "
             "ETA %s",
             (long long)r->step, (long long)t->total_steps, r->loss, r->lr, r->grad_norm,
             r->tok_per_s, r->world_size, r->world_size > 1 ? "s" : "", eta);
    if (tty) fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
    else fprintf(stderr, "%s\n", line);
}

// The document objectives (sft, cpt) in the step of train/step.c: micro_batch windows, the
// loss a mean over every trained target of the step.
static int64_t sft_read(trainer *t, int64_t o) {
    return batcher_next(&t->data, t->tc->micro_batch, t->tokens + o, t->targets + o,
                        t->positions + o, t->doc_ids + o);
}

// Scaling each micro-batch's gradient by 1/n_targets of the whole step makes the accumulated
// gradient the gradient of the step's mean; st = (loss sum, targets).
static void sft_micro_batch(trainer *t, const lm_batch *b, int64_t o, int64_t M,
                            int64_t n_targets, double *st) {
    (void)o;
    (void)M;
    int64_t counted = 0;
    st[0] = lm_forward(&t->plan, b, 1, n_targets ? 1.0f / (float)n_targets : 0.0f, &counted);
    st[1] = (double)counted;
    lm_backward(&t->plan);
}

static double sft_finish(trainer *t, int64_t M, metrics_row *row) {
    (void)row;
    double loss_sum = 0.0;
    int64_t counted = 0;
    for (int64_t m = 0; m < M; m++) {
        loss_sum += t->all_stats[2 * m];
        counted += (int64_t)t->all_stats[2 * m + 1];
    }
    return counted ? loss_sum / (double)counted : 0.0;
}

const trainer_objective trainer_sft_objective = {sft_read, sft_micro_batch, sft_finish};

// Rank 0 alone writes (metrics, checkpoints, the adapter) and prints; every rank agrees after
// each step on failures (a full disk on rank 0) and on a stop signal received by any rank, so
// all ranks stop after the same step and rank 0's checkpoint is the one they agree on.
static int run_loop(trainer *t) {
    const train_config *tc = t->tc;
    const int is0 = t->d->rank == 0, N = t->d->size;
    const int tty = isatty(STDERR_FILENO);
    double last_print = clock_now_s(), session_start = clock_now_s(), session_steps = 0;
    double elapsed_base = t->st.elapsed_s;
    int64_t saved_at_step = -1;
    // A signal during start-up: all ranks skip the loop together and save.
    int stop = stop_requested;
    if (trainer_sync_point(t, 0, &stop)) return -1;
    const int evals = tc->eval_every > 0 && (t->n_val_windows > 0 || tc->n_eval_mcq > 0);
    if (t->st.step == 0 && evals) {
        metrics_row r = {.elapsed_s = t->st.elapsed_s};
        if (evaluate_all(t, &r)) return -1;
        int rc = 0;
        if (is0) {
            rc = metrics_log_eval(&t->log, &r);
            if (!rc) print_eval(t, &r);
        }
        if (trainer_sync_point(t, rc, NULL)) return -1;
    }
    // A run that stopped early and is resumed with the same patience stays stopped.
    int early = patience_out(t);
    while (t->st.step < t->total_steps && !stop && !early) {
        double t0 = clock_now_s();
        metrics_row row = {0};
        if (trainer_step(t, &row)) return -1;
        double dt = clock_now_s() - t0;
        session_steps++;
        t->st.elapsed_s = elapsed_base + (clock_now_s() - session_start);
        row.tok_per_s = (double)tc->grad_accum * N * t->rows * tc->seq_len / dt;
        row.elapsed_s = t->st.elapsed_s;
        int is_best = 0;
        if (evals && t->st.step % tc->eval_every == 0) {
            if (evaluate_all(t, &row)) return -1;
            is_best = best_update(t, &row);
            early = patience_out(t);
        }
        int rc = is0 ? metrics_log_step(&t->log, &row) : 0;
        double rate = session_steps / (clock_now_s() - session_start);
        int last = t->st.step == t->total_steps;
        if (is0 && !rc && (tty || clock_now_s() - last_print >= 10.0 || last || row.has_val)) {
            show_progress(t, &row, rate, tty, last);
            if (row.has_val && !tty) print_eval(t, &row);
            last_print = clock_now_s();
        }
        // The best evaluation's step is always saved: `best` must name a checkpoint.
        if (!rc && (is_best || (tc->save_every > 0 && t->st.step % tc->save_every == 0))) {
            rc = is0 ? save_checkpoint(t, is_best) : 0;
            saved_at_step = t->st.step;
        }
        stop = stop_requested;
        if (trainer_sync_point(t, rc, &stop)) return -1;
    }
    if (tty && is0) fputc('\n', stderr);
    int rc = 0;
    if (is0 && saved_at_step != t->st.step) rc = save_checkpoint(t, 0);
    if (trainer_sync_point(t, rc, NULL)) return -1;
    if (stop) {
        if (is0)
            fprintf(stderr, "medtune: stopped at step %lld; checkpoint written; continue with "
                            "--resume\n",
                    (long long)t->st.step);
        return 0;
    }
    if (is0 && early)
        fprintf(stderr, "medtune: early stop at step %lld: %s did not improve in %lld "
                        "evaluations (best %.6g at step %lld, checkpoints/best)\n",
                (long long)t->st.step, tc->best_metric, (long long)t->st.evals_since_best,
                t->st.best_score, (long long)t->st.best_step);
    if (is0) rc = run_write_final_adapter(tc->out_dir, &t->lora, tc->model);
    if (trainer_sync_point(t, rc, NULL)) return -1;
    if (is0)
        fprintf(stderr,
                "medtune: done: %lld steps, %lld tokens in %.1f s on %d rank%s; adapter in "
                "%s/adapter\n",
                (long long)t->st.step, (long long)t->st.tokens_seen, t->st.elapsed_s, N,
                N > 1 ? "s" : "", tc->out_dir);
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

static void print_start(const trainer *t, int resume) {
    const train_config *tc = t->tc;
    fprintf(stderr,
            "medtune: training %s: %lld steps of %d x %d x %d tokens, LoRA r=%d on %zu "
            "parameters, %d threads%s%s\n",
            tc->model, (long long)t->total_steps, tc->grad_accum, t->rows, tc->seq_len,
            tc->lora.r, t->lora.n_params, omp_get_max_threads(),
            t->d->size > 1 ? " per rank" : "", resume ? ", resumed" : "");
    if (t->d->size > 1)
        fprintf(stderr, "medtune: %d ranks: a step is %d micro-batches (grad_accum x ranks)\n",
                t->d->size, tc->grad_accum * t->d->size);
    if (t->pref)
        fprintf(stderr, "medtune: objective %s: a micro-batch is %d pairs (%d rows: chosen, then "
                        "rejected), %lld usable pairs in the train split\n",
                tc->objective == OBJECTIVE_DPO ? "dpo" : "orpo", tc->micro_batch, t->rows,
                (long long)t->data.n_train);
    if (resume) fprintf(stderr, "medtune: resuming at step %lld\n", (long long)t->st.step);
    if (tc->eval_every > 0 && t->n_val_windows == 0)
        fprintf(stderr, "medtune: warning: %s: the val split has no window of %d tokens; "
                        "no evaluation\n",
                t->val.dir, tc->seq_len + 1);
}

static void trainer_free(trainer *t) {
    metrics_log_close(&t->log);
    free(t->tokens);
    free(t->targets);
    free(t->positions);
    free(t->doc_ids);
    free(t->grad_sum);
    free(t->stats);
    free(t->all_stats);
    free(t->gather);
    free(t->val_stats);
    free(t->resp);
    free(t->val_pairs);
    pref_ctx_free(&t->pc);
    if (t->has_ref_lora) lora_adapter_free(&t->ref_lora);
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

static int alloc_buffers(trainer *t) {
    const train_config *tc = t->tc;
    const int64_t N = t->d->size, ga = tc->grad_accum;
    int64_t per_rank = (eval_chunks(t) + N - 1) / N;
    int64_t own = per_rank > ga ? per_rank : ga;
    const int64_t W = t->stat_width;
    size_t n = (size_t)(ga + 1) * t->rows * tc->seq_len;
    t->resp = t->pref ? malloc(n) : NULL;
    t->tokens = malloc(n * sizeof(int32_t));
    t->targets = malloc(n * sizeof(int32_t));
    t->positions = malloc(n * sizeof(int32_t));
    t->doc_ids = malloc(n * sizeof(int32_t));
    t->grad_sum = malloc(t->lora.n_params * sizeof(float));
    t->stats = calloc((size_t)(W * own), sizeof(double));
    t->all_stats = malloc((size_t)(W * ga * N) * sizeof(double));
    t->gather = malloc((size_t)(W * own * N) * sizeof(double));
    t->val_stats = malloc((size_t)(W * (eval_chunks(t) + 1)) * sizeof(double));
    if ((t->pref && !t->resp) || !t->tokens || !t->targets || !t->positions || !t->doc_ids || !t->grad_sum || !t->stats ||
        !t->all_stats || !t->gather || !t->val_stats)
        return err_set("train: out of memory for batches");
    if (t->pref && pref_ctx_init(&t->pc, tc, tc->micro_batch, tc->seq_len,
                                 t->has_ref_lora ? &t->ref_lora : NULL))
        return -1;
    return dist_reserve(t->d, t->lora.n_params);
}

// Refuses ranks that would not train the same run: the resolved config, --resume, the base
// model and the shards (by content) must be those of rank 0.
static int check_same_run(trainer *t, int resume) {
    cJSON *j = train_config_to_json(t->tc);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    int rc = text ? 0 : err_set("%s: out of memory", t->tc->out_dir);
    uint8_t digest[32] = {0};
    if (!rc) {
        sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, text, strlen(text));
        sha256_update(&c, &resume, sizeof resume);
        sha256_update(&c, t->st.model_fingerprint, 64);
        sha256_update(&c, t->st.data_fingerprint, 64);
        sha256_final(&c, digest);
    }
    free(text);
    if (trainer_sync_point(t, rc, NULL)) return -1;
    int differs;
    if (dist_same_digest(t->d, digest, &differs)) return 0;
    t->quiet = t->d->rank != differs;
    return err_set("%s: rank %d of %d runs another config, --resume flag, base model or shard "
                   "content than rank 0: every rank must run the same command on the same files",
                   t->tc->out_dir, differs, t->d->size);
}

// Rank 0 alone read the checkpoint (or the initial adapter): every rank continues from its
// adapter, optimizer state, counters and data cursor.
static int share_state(trainer *t) {
    if (t->d->size == 1) return 0;
    dist_bcast_bytes(t->d, t->lora.params, t->lora.n_params * sizeof(float));
    if (t->has_ref_lora)
        dist_bcast_bytes(t->d, t->ref_lora.params, t->ref_lora.n_params * sizeof(float));
    dist_bcast_bytes(t->d, t->opt.m, t->opt.n * sizeof(float));
    dist_bcast_bytes(t->d, t->opt.v, t->opt.n * sizeof(float));
    dist_bcast_bytes(t->d, &t->opt.step, sizeof t->opt.step);
    dist_bcast_bytes(t->d, &t->st.step, sizeof t->st.step);
    dist_bcast_bytes(t->d, &t->st.tokens_seen, sizeof t->st.tokens_seen);
    dist_bcast_bytes(t->d, &t->st.elapsed_s, sizeof t->st.elapsed_s);
    dist_bcast_bytes(t->d, &t->st.cursor, sizeof t->st.cursor);
    dist_bcast_bytes(t->d, &t->st.dropout_counter, sizeof t->st.dropout_counter);
    dist_bcast_bytes(t->d, &t->st.best_step, sizeof t->st.best_step);
    dist_bcast_bytes(t->d, &t->st.best_score, sizeof t->st.best_score);
    dist_bcast_bytes(t->d, &t->st.evals_since_best, sizeof t->st.evals_since_best);
    int rc = t->d->rank ? batcher_restore(&t->data, &t->st.cursor) : 0;
    return trainer_sync_point(t, rc, NULL);
}

// The memory plan, shown by rank 0 before the large allocations; a machine that cannot hold
// them refuses here rather than being killed in step 1 (docs/training.md#memory-plan).
static int check_memory(const trainer *t) {
    mem_plan mp;
    if (mem_plan_make(&mp, &t->m, &t->lora, t->tc, t->rows)) return -1;
    if (t->d->rank == 0) mem_plan_print(&mp, stderr);
    return mem_plan_check(&mp, t->tc, mem_available("/proc/meminfo"));
}

int trainer_run_dist(const train_config *tc, int resume, dist_ctx *d,
                     const trainer_mcq_scorer *mcq) {
    trainer t;
    memset(&t, 0, sizeof t);
    t.tc = tc;
    t.d = d;
    t.mcq = mcq;
    t.best_higher = train_config_best_higher(tc, &t.best_mcq);
    t.pref = tc->objective == OBJECTIVE_DPO || tc->objective == OBJECTIVE_ORPO;
    t.rows = t.pref ? 2 * tc->micro_batch : tc->micro_batch;
    t.stat_width = t.pref ? PREF_N_STATS : 2;
    const int is0 = d->rank == 0;
    const char *inject = getenv("MEDTUNE_INJECT_NAN_STEP");
    t.inject_nan_step = inject ? atoll(inject) : 0;
    if (tc->threads > 0) omp_set_num_threads(tc->threads);
    char latest[4400];
    snprintf(latest, sizeof latest, "%s/checkpoints/latest", tc->out_dir);
    int rc = 0;
    if (is0 && tc->n_eval_mcq > 0 && !mcq)
        rc = err_set("%s: eval_mcq is set, but this command scores no MCQ set (use medtune train)",
                     tc->out_dir);
    if (!rc && is0 && !resume && path_exists(latest))
        rc = err_set("%s: already holds a run (checkpoints/latest exists): pass --resume to "
                     "continue it, or choose another out_dir",
                     tc->out_dir);
    if (!rc && is0) rc = dir_create(tc->out_dir);
    if (!rc) rc = model_load_as(&t.m, tc->model, tc->base_dtype);
    if (!rc && tc->seq_len > t.m.cfg.max_position_embeddings && t.m.cfg.max_position_embeddings > 0)
        rc = err_set("batch.seq_len: %d exceeds the model's context of %d positions", tc->seq_len,
                     t.m.cfg.max_position_embeddings);
    rc = rc || open_data(&t) || init_adapter(&t) || init_reference(&t) || check_memory(&t) ||
             adamw_init(&t.opt, &tc->optim, t.lora.n_params) ||
             lm_plan_init_recompute(&t.plan, &t.m, &t.lora, t.rows, tc->seq_len, tc->recompute) ||
             alloc_buffers(&t);
    if (!rc) {
        t.plan.training = 1;
        t.plan.dropout_seed = tc->seed;
        t.st.rng_seed = tc->seed;
        t.st.threads = omp_get_max_threads();
        model_fingerprint(&t.m, t.st.model_fingerprint);
        data_fingerprint(&t, t.st.data_fingerprint);
    }
    int ok = !trainer_sync_point(&t, rc, NULL) && !check_same_run(&t, resume);
    if (ok) {
        rc = is0 ? (resume ? restore(&t) : checkpoint_clean_partial(tc->out_dir)) : 0;
        if (!rc && is0) rc = trainer_pref_check_reference(&t, resume);
        ok = !trainer_sync_point(&t, rc, NULL) && !share_state(&t);
    }
    if (ok) {
        rc = is0 ? write_resolved_config(&t) : 0;
        // A new run drops every line a killed earlier start left (-1: even its step-0 evaluation).
        if (!rc && is0) rc = metrics_log_open(&t.log, tc->out_dir, resume ? t.st.step : -1);
        ok = !trainer_sync_point(&t, rc, NULL);
    }
    if (ok) {
        if (is0) print_start(&t, resume);
        ok = !run_loop(&t);
    }
    int quiet = t.quiet;
    trainer_free(&t);
    if (ok) return 0;
    return quiet ? TRAINER_FAILED_ELSEWHERE : -1;
}

int trainer_run(const train_config *tc, int resume) {
    dist_ctx one;
    dist_init_single(&one);
    int rc = trainer_run_dist(tc, resume, &one, NULL);
    dist_free(&one);
    return rc ? -1 : 0;
}
