// medtune eval MODEL [--adapter DIR] (--shards DIR ... | --preference DIR [--ref-adapter DIR]
// ... | --mcq FILE ... | --suite FILE ...): perplexity over a shard directory, DPO rewards and
// log-probabilities on preference pairs (against the model without the adapter or with a
// reference adapter), log-likelihood accuracy on a multiple-choice benchmark file, or on every
// task of a suite file (optionally against a second adapter).
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoints/peft.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fileio.h"
#include "tokenizer/tokenizer.h"
#include "eval/mcq.h"
#include "eval/perplexity.h"
#include "eval/preference.h"
#include "eval/suite.h"
#include "tools/commands.h"
#include "model/model.h"

typedef struct {
    const char *model, *adapter, *shards, *split, *doc_attention, *mcq, *format, *gold, *out;
    const char *suite, *compare, *out_dir, *preference, *ref_adapter;
    long long seq_len, batch, max_windows, limit, max_len;
    double beta;
    int add_special, json, full_forward;
} eval_args;

static const cli_positional POSITIONALS[] = {
    {"MODEL", offsetof(eval_args, model), "Hugging Face model directory or .gguf file", 0},
    {0},
};

#define PPL "perplexity"
#define MCQ "multiple choice"
#define PREF "preference pairs (--split, --seq-len; --batch, --max-windows count pairs)"
#define SUITE "benchmark suite (and the multiple-choice options marked *)"
static const cli_option OPTIONS[] = {
    {.name = "adapter", .kind = CLI_STRING, .metavar = "DIR",
     .offset = offsetof(eval_args, adapter),
     .help = "PEFT LoRA adapter applied to the model", .default_text = "none"},
    {.name = "json", .kind = CLI_FLAG, .offset = offsetof(eval_args, json),
     .help = "print the result as one JSON object on stdout"},
    {.name = "shards", .kind = CLI_STRING, .metavar = "DIR", .offset = offsetof(eval_args, shards),
     .help = "shard directory written by `medtune prep` with this model's tokenizer", .group = PPL,
     .one_of = 1},
    {.name = "split", .kind = CLI_STRING, .choices = "val|train",
     .offset = offsetof(eval_args, split),
     .help = "which split of the shard directory", .group = PPL},
    {.name = "doc-attention", .kind = CLI_STRING, .choices = "auto|causal|document",
     .offset = offsetof(eval_args, doc_attention),
     .help = "attention over the documents packed in a window (train config doc_attention); "
             "auto: document for shards of whole documents (chat data), causal for a text stream",
     .group = PPL},
    {.name = "seq-len", .kind = CLI_INT, .metavar = "N", .offset = offsetof(eval_args, seq_len),
     .help = "window length in tokens", .min = 1, .max = 1 << 20, .group = PPL},
    {.name = "batch", .kind = CLI_INT, .metavar = "N", .offset = offsetof(eval_args, batch),
     .help = "windows per forward pass", .min = 1, .max = 4096, .group = PPL},
    {.name = "max-windows", .kind = CLI_INT, .metavar = "N",
     .offset = offsetof(eval_args, max_windows),
     .help = "evaluate N evenly spaced windows; 0 = all",
     .min = 0, .max = CLI_UNBOUNDED, .group = PPL},
    {.name = "preference", .kind = CLI_STRING, .metavar = "DIR",
     .offset = offsetof(eval_args, preference),
     .help = "preference-pair shards (`medtune prep` of `preference` inputs): mean log-prob of "
             "chosen and rejected; with --adapter also DPO rewards against the model without "
             "it (accuracy, margins)",
     .group = PREF, .one_of = 1},
    {.name = "ref-adapter", .kind = CLI_STRING, .metavar = "DIR",
     .offset = offsetof(eval_args, ref_adapter),
     .help = "the DPO reference is MODEL with this PEFT LoRA adapter (same rank and targets as "
             "--adapter; a run from init_adapter: that adapter)",
     .default_text = "MODEL without an adapter", .group = PREF},
    {.name = "beta", .kind = CLI_FLOAT, .metavar = "B", .offset = offsetof(eval_args, beta),
     .help = "DPO beta of the rewards (the run's dpo.beta)", .min = 0, .max = 1e6, .min_open = 1,
     .default_text = "0.1", .group = PREF},
    {.name = "mcq", .kind = CLI_STRING, .metavar = "FILE", .offset = offsetof(eval_args, mcq),
     .help = "benchmark file: PubMedQA .json, MedQA / MedMCQA .jsonl, MMLU .csv or a directory of "
             "MMLU .csv files",
     .group = MCQ, .one_of = 1},
    {.name = "suite", .kind = CLI_STRING, .metavar = "FILE.json",
     .offset = offsetof(eval_args, suite),
     .help = "a suite file listing multiple-choice tasks (configs/medical_suite.json: the Open "
             "Medical-LLM Leaderboard's); prints a leaderboard table and writes results.json, "
             "results.csv and per-item files", .group = SUITE, .one_of = 1},
    {.name = "compare", .kind = CLI_STRING, .metavar = "ADAPTER",
     .offset = offsetof(eval_args, compare),
     .help = "also score MODEL with this PEFT LoRA adapter on the same items and test the "
             "change of accuracy (paired exact McNemar test)", .default_text = "none",
     .group = SUITE},
    {.name = "out-dir", .kind = CLI_STRING, .metavar = "DIR", .offset = offsetof(eval_args, out_dir),
     .help = "where the suite's results go (created)",
     .default_text = "runs/eval/<suite file name without .json>", .group = SUITE},
    {.name = "format", .kind = CLI_STRING, .metavar = "F", .offset = offsetof(eval_args, format),
     .help = "pubmedqa, medqa, medmcqa or mmlu", .default_text = "guessed from FILE", .group = MCQ},
    {.name = "gold", .kind = CLI_STRING, .metavar = "FILE", .offset = offsetof(eval_args, gold),
     .help = "PubMedQA only: JSON PMID -> answer (test_ground_truth.json); evaluates only "
             "those PMIDs",
     .default_text = "every record of FILE", .group = MCQ},
    {.name = "limit", .kind = CLI_INT, .metavar = "N", .offset = offsetof(eval_args, limit),
     .help = "first N valid items of each file; 0 = all", .min = 0, .max = CLI_UNBOUNDED,
     .group = MCQ},
    {.name = "max-len", .kind = CLI_INT, .metavar = "N", .offset = offsetof(eval_args, max_len),
     .help = "longest model input; longer contexts lose their start (*)", .min = 2,
     .max = 1 << 20,
     .default_text = "the model's max_position_embeddings", .group = MCQ},
    {.name = "add-special", .kind = CLI_FLAG, .offset = offsetof(eval_args, add_special),
     .help = "tokenize with the tokenizer's special tokens (BOS), like the harness's "
             "add_bos_token=True (*)",
     .default_text = "off, as the harness with add_bos_token=False", .group = MCQ},
    {.name = "full-forward", .kind = CLI_FLAG, .offset = offsetof(eval_args, full_forward),
     .help = "score with the training forward pass over every position (all logits): the "
             "slower reference path (*)",
     .default_text = "off: the prompt once through the KV cache, choices batched on top",
     .group = MCQ},
    {.name = "out", .kind = CLI_STRING, .metavar = "FILE.jsonl", .offset = offsetof(eval_args, out),
     .help = "write one JSON line per item", .default_text = "none", .group = MCQ},
    {0},
};

static void add_str_or_null(cJSON *o, const char *key, const char *v) {
    if (v) cJSON_AddStringToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static void print_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

// The fields every --json output of the shard-based modes starts with.
static cJSON *json_header(const eval_args *a, const char *input_key, const char *input) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", a->model);
    add_str_or_null(j, "adapter", a->adapter);
    cJSON_AddStringToObject(j, input_key, input);
    cJSON_AddStringToObject(j, "split", a->split);
    cJSON_AddNumberToObject(j, "seq_len", (double)a->seq_len);
    return j;
}

static int run_perplexity(const eval_args *a, const model *m, const lora_adapter *lora,
                          const tokenizer *tok) {
    ppl_attention att = !strcmp(a->doc_attention, "causal")     ? PPL_ATTENTION_CAUSAL
                        : !strcmp(a->doc_attention, "document") ? PPL_ATTENTION_DOCUMENT
                                                                : PPL_ATTENTION_AUTO;
    ppl_options o = {a->split, (int)a->seq_len, (int)a->batch, a->max_windows, isatty(2), att};
    ppl_result r;
    double t0 = clock_now_s();
    if (perplexity_eval(m, lora, tokenizer_fingerprint(tok), a->model, a->shards, &o, &r))
        return cli_fail();
    double secs = clock_now_s() - t0;
    if (a->json) {
        cJSON *j = json_header(a, "shards", a->shards);
        cJSON_AddStringToObject(j, "doc_attention", r.document_attention ? "document" : "causal");
        cJSON_AddNumberToObject(j, "windows", (double)r.windows);
        cJSON_AddNumberToObject(j, "windows_total", (double)r.windows_total);
        cJSON_AddNumberToObject(j, "tokens", (double)r.tokens);
        cJSON_AddNumberToObject(j, "loss", r.loss);
        cJSON_AddNumberToObject(j, "ppl", r.ppl);
        cJSON_AddNumberToObject(j, "seconds", secs);
        print_json(j);
    } else {
        printf("%s split of %s: %lld of %lld windows of %lld tokens, %lld targets, %s "
               "attention\n", a->split, a->shards, (long long)r.windows,
               (long long)r.windows_total, a->seq_len, (long long)r.tokens,
               r.document_attention ? "document" : "causal");
        printf("loss %.6f  ppl %.4f  (%.1f s)\n", r.loss, r.ppl, secs);
    }
    return 0;
}

static int run_preference(const eval_args *a, const model *m, const lora_adapter *lora,
                          const lora_adapter *ref, const tokenizer *tok) {
    pref_eval_options o = {a->split, (int)a->seq_len, (int)a->batch, a->max_windows, a->beta,
                           isatty(2), a->ref_adapter};
    pref_eval_result r;
    double t0 = clock_now_s();
    if (preference_eval(m, lora, ref, tokenizer_fingerprint(tok), a->model, a->preference, &o,
                        &r))
        return cli_fail();
    double secs = clock_now_s() - t0;
    if (a->json) {
        cJSON *j = json_header(a, "preference", a->preference);
        cJSON_AddNumberToObject(j, "pairs", (double)r.pairs);
        cJSON_AddNumberToObject(j, "pairs_usable", (double)r.pairs_usable);
        cJSON_AddNumberToObject(j, "pairs_total", (double)r.pairs_total);
        cJSON_AddNumberToObject(j, "logps/chosen", r.logps_chosen);
        cJSON_AddNumberToObject(j, "logps/rejected", r.logps_rejected);
        cJSON_AddNumberToObject(j, "tokens/chosen", (double)r.tokens_chosen);
        cJSON_AddNumberToObject(j, "nll/chosen", r.nll_chosen);
        if (r.has_rewards) {
            add_str_or_null(j, "ref_adapter", a->ref_adapter);
            cJSON_AddNumberToObject(j, "ref_logps/chosen", r.ref_logps_chosen);
            cJSON_AddNumberToObject(j, "ref_logps/rejected", r.ref_logps_rejected);
            cJSON_AddNumberToObject(j, "ref_nll/chosen", r.ref_nll_chosen);
            cJSON_AddNumberToObject(j, "beta", a->beta);
            cJSON_AddNumberToObject(j, "rewards/chosen", r.rewards_chosen);
            cJSON_AddNumberToObject(j, "rewards/rejected", r.rewards_rejected);
            cJSON_AddNumberToObject(j, "rewards/margins", r.margins);
            cJSON_AddNumberToObject(j, "rewards/accuracies", r.accuracy);
            cJSON_AddNumberToObject(j, "loss", r.loss);
        }
        cJSON_AddNumberToObject(j, "seconds", secs);
        print_json(j);
        return 0;
    }
    printf("%s split of %s: %lld of %lld pairs (%lld with a response token in %lld + 1 tokens)\n",
           a->split, a->preference, (long long)r.pairs, (long long)r.pairs_total,
           (long long)r.pairs_usable, a->seq_len);
    printf("logps/chosen %.6f  logps/rejected %.6f  (mean summed response log-prob)\n",
           r.logps_chosen, r.logps_rejected);
    printf("nll/chosen %.6f  (loss per token of the %lld chosen response tokens)\n",
           r.nll_chosen, (long long)r.tokens_chosen);
    if (r.has_rewards) {
        printf("reference %s: ref_logps/chosen %.6f  ref_logps/rejected %.6f  ref_nll/chosen "
               "%.6f\n", a->ref_adapter ? a->ref_adapter : "MODEL without an adapter",
               r.ref_logps_chosen, r.ref_logps_rejected, r.ref_nll_chosen);
        printf("beta %g: rewards/accuracies %.4f  rewards/margins %.6f  rewards/chosen %.6f  "
               "rewards/rejected %.6f  sigmoid DPO loss %.6f\n",
               a->beta, r.accuracy, r.margins, r.rewards_chosen, r.rewards_rejected, r.loss);
    } else {
        printf("rewards need an adapter: they compare the model with --adapter against the "
               "model without it (or with --ref-adapter)\n");
    }
    printf("%.1f s\n", secs);
    return 0;
}

// Fails before a long evaluation when --out could not be written at its end.
static int out_dir_check(const char *out) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", out);
    char *slash = strrchr(dir, '/');
    if (!slash) return 0;
    if (slash == dir) slash[1] = '\0';
    else *slash = '\0';
    if (!path_is_dir(dir)) return err_set("%s: the directory %s does not exist", out, dir);
    if (access(dir, W_OK)) return err_set("%s: the directory %s is not writable", out, dir);
    return 0;
}

// Reads the benchmark items (before the model, so a bad file fails fast).
static int read_mcq(const eval_args *a, mcq_format *f, mcq_set *s) {
    if (a->format ? mcq_format_from_name(a->format, f) : mcq_format_detect(a->mcq, f)) return -1;
    if (mcq_set_read(s, a->mcq, *f, (size_t)a->limit, a->gold)) return -1;
    if (s->n_skipped)
        fprintf(stderr, "medtune eval: skipped %zu malformed record%s (first: %s)\n",
                s->n_skipped, s->n_skipped == 1 ? "" : "s", s->first_skip);
    return 0;
}

static int run_mcq(const eval_args *a, mcq_format f, const mcq_set *s, const model *m,
                   const lora_adapter *lora, const tokenizer *tok) {
    mcq_options o = {(int)a->max_len, a->add_special, isatty(2), a->full_forward};
    if (!o.max_len)  // the harness's default too when a config gives no length
        o.max_len = m->cfg.max_position_embeddings > 1 ? m->cfg.max_position_embeddings : 2048;
    mcq_result *res = calloc(s->n, sizeof *res);
    double t0 = clock_now_s();
    int rc = 0;
    if (!res) rc = err_set("eval: out of memory for %zu results", s->n);
    else rc = mcq_score(m, lora, tok, s, &o, res);
    if (!rc && a->out) rc = mcq_results_write(a->out, s, res);
    if (rc) {
        free(res);
        return cli_fail();
    }
    double secs = clock_now_s() - t0;
    mcq_summary sum;
    mcq_summarize(s, res, &sum);
    if (a->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", a->model);
        add_str_or_null(j, "adapter", a->adapter);
        cJSON_AddStringToObject(j, "file", a->mcq);
        cJSON_AddStringToObject(j, "format", mcq_format_name(f));
        cJSON_AddNumberToObject(j, "n", (double)sum.n);
        cJSON_AddNumberToObject(j, "accuracy", sum.acc);
        cJSON_AddNumberToObject(j, "accuracy_norm", sum.acc_norm);
        cJSON_AddNumberToObject(j, "correct", (double)sum.correct);
        cJSON_AddNumberToObject(j, "correct_norm", (double)sum.correct_norm);
        double ci[2] = {sum.ci_lo, sum.ci_hi}, ci_norm[2] = {sum.ci_norm_lo, sum.ci_norm_hi};
        cJSON_AddItemToObject(j, "ci95", cJSON_CreateDoubleArray(ci, 2));
        cJSON_AddItemToObject(j, "ci95_norm", cJSON_CreateDoubleArray(ci_norm, 2));
        cJSON_AddStringToObject(j, "interval", "wilson");
        cJSON_AddNumberToObject(j, "stderr", sum.stderr_acc);
        cJSON_AddNumberToObject(j, "stderr_norm", sum.stderr_norm);
        cJSON_AddNumberToObject(j, "skipped", (double)s->n_skipped);
        cJSON_AddNumberToObject(j, "truncated_items", (double)sum.truncated_items);
        cJSON_AddNumberToObject(j, "max_len", o.max_len);
        cJSON_AddNumberToObject(j, "seconds", secs);
        print_json(j);
    } else {
        printf("%s: %s, n=%zu items (%zu skipped, %zu truncated to %d tokens)\n",
               mcq_format_name(f), a->mcq, sum.n, s->n_skipped, sum.truncated_items, o.max_len);
        printf("acc       %.4f  (%zu/%zu)  95%% CI [%.4f, %.4f]\n", sum.acc, sum.correct, sum.n,
               sum.ci_lo, sum.ci_hi);
        printf("acc_norm  %.4f  (%zu/%zu)  95%% CI [%.4f, %.4f]\n", sum.acc_norm,
               sum.correct_norm, sum.n, sum.ci_norm_lo, sum.ci_norm_hi);
        printf("%.1f s, %.2f items/s\n", secs, secs > 0 ? (double)sum.n / secs : 0.0);
    }
    free(res);
    return 0;
}

// runs/eval/<suite file name without its directory and .json>
static void default_out_dir(const char *suite, char *out, size_t n) {
    const char *base = strrchr(suite, '/') ? strrchr(suite, '/') + 1 : suite;
    size_t len = strlen(base);
    if (len > 5 && !strcmp(base + len - 5, ".json")) len -= 5;
    snprintf(out, n, "runs/eval/%.*s", (int)len, base);
}

static int run_suite(const eval_args *a, eval_suite *s, model *m, const lora_adapter *lora,
                     const tokenizer *tok) {
    mcq_options o = {(int)(a->max_len ? a->max_len : s->max_len),
                     a->add_special || s->add_special, isatty(2), a->full_forward};
    if (!o.max_len)
        o.max_len = m->cfg.max_position_embeddings > 1 ? m->cfg.max_position_embeddings : 2048;
    char dir[4096];
    if (a->out_dir) snprintf(dir, sizeof dir, "%s", a->out_dir);
    else default_out_dir(a->suite, dir, sizeof dir);
    double t0 = clock_now_s();
    if (suite_score(s, 0, m, lora, tok, &o)) return cli_fail();
    if (a->compare) {
        lora_adapter other;
        if (peft_adapter_load(a->compare, &m->cfg, &other)) return cli_fail();
        int rc = suite_score(s, 1, m, &other, tok, &o);
        lora_adapter_free(&other);
        if (rc) return cli_fail();
        suite_compare(s);
    }
    suite_run_info info = {a->model, a->adapter, a->compare, a->suite, o.max_len,
                           clock_now_s() - t0};
    if (suite_write(s, &info, dir)) return cli_fail();
    suite_print(s, stdout);
    printf("\nresults: %s/results.json, %s/results.csv (%.1f s)\n", dir, dir, info.seconds);
    return 0;
}

static int run(int argc, char **argv) {
    eval_args a = {.split = "val", .doc_attention = "auto", .seq_len = 512, .batch = 4,
                   .beta = 0.1};
    int rc;
    if (cli_parse(&EVAL_COMMAND, argc, argv, &a, &rc)) return rc;
    if (a.out && !a.mcq) return cli_usage_error("eval", "--out is for --mcq");
    if ((a.compare || a.out_dir) && !a.suite)
        return cli_usage_error("eval", "--compare and --out-dir are for --suite");
    if (a.ref_adapter && !a.preference)
        return cli_usage_error("eval", "--ref-adapter is for --preference");
    if (a.ref_adapter && !a.adapter)
        return cli_usage_error("eval", "--ref-adapter needs --adapter: the rewards compare the "
                                       "model with --adapter against the model with "
                                       "--ref-adapter");
    if (a.suite && (a.limit || a.format || a.gold || a.json))
        return cli_usage_error("eval", "--limit, --format, --gold and --json are for --mcq; a "
                                       "suite file gives each task's limit, format and gold");
    eval_suite suite = {0};
    if (a.suite && suite_load(&suite, a.suite)) return cli_fail();
    mcq_format f = MCQ_PUBMEDQA;
    mcq_set s = {0};
    if (a.out && out_dir_check(a.out)) return cli_fail();
    if (a.mcq && read_mcq(&a, &f, &s)) return cli_fail();
    model m;
    tokenizer *tok = NULL;
    lora_adapter lora, ref;
    int have_lora = 0, have_ref = 0, have_model = 0;
    if (model_load(&m, a.model)) {
        rc = cli_fail();
        goto done;
    }
    have_model = 1;
    if (!(tok = tokenizer_load(a.model))) {
        rc = cli_fail();
        goto done;
    }
    if (a.adapter) {
        if (peft_adapter_load(a.adapter, &m.cfg, &lora)) {
            rc = cli_fail();
            goto done;
        }
        have_lora = 1;
    }
    if (a.ref_adapter) {
        if (peft_adapter_load(a.ref_adapter, &m.cfg, &ref)) {
            rc = cli_fail();
            goto done;
        }
        have_ref = 1;
    }
    rc = a.shards       ? run_perplexity(&a, &m, have_lora ? &lora : NULL, tok)
         : a.preference ? run_preference(&a, &m, have_lora ? &lora : NULL,
                                         have_ref ? &ref : NULL, tok)
         : a.suite ? run_suite(&a, &suite, &m, have_lora ? &lora : NULL, tok)
                   : run_mcq(&a, f, &s, &m, have_lora ? &lora : NULL, tok);
done:
    if (have_lora) lora_adapter_free(&lora);
    if (have_ref) lora_adapter_free(&ref);
    if (tok) tokenizer_free(tok);
    if (have_model) model_free(&m);
    mcq_set_free(&s);
    suite_free(&suite);
    return rc;
}

const cli_command EVAL_COMMAND = {
    .name = "eval",
    .summary = "perplexity on shards, or accuracy on PubMedQA/MedQA/MedMCQA/MMLU files and suites",
    .description =
        "Perplexity (--shards): mean next-token loss over the trained targets of a shard\n"
        "directory's windows (made by `medtune prep` with this model's tokenizer), and\n"
        "exp(loss). Packed chat documents are scored each on its own (document\n"
        "attention), as training's val loss with doc_attention: document.\n\n"
        "Preference pairs (--preference): the mean summed log-probability of the chosen\n"
        "and of the rejected responses, and with --adapter TRL's DPO rewards against the\n"
        "model without the adapter, or with --ref-adapter (reward accuracy, margins).\n\n"
        "Multiple choice (--mcq): log-likelihood scoring as lm-evaluation-harness does it\n"
        "(acc and acc_norm with 95% Wilson intervals); prompts are listed in docs/eval.md.\n\n"
        "Suite (--suite): the tasks of a suite file, a leaderboard table, results.json and\n"
        "results.csv; --compare ADAPTER scores the same items with an adapter and gives a\n"
        "paired exact McNemar test per task and over all items.\n",
    .positionals = POSITIONALS,
    .options = OPTIONS,
    .run = run,
};
