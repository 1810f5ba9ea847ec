// medtune eval MODEL [--adapter DIR] (--shards DIR ... | --mcq FILE ...): perplexity over a
// shard directory, or log-likelihood accuracy on a multiple-choice benchmark file.
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoints/peft.h"
#include "common/error.h"
#include "common/fileio.h"
#include "tokenizer/tokenizer.h"
#include "eval/mcq.h"
#include "eval/perplexity.h"
#include "tools/commands.h"
#include "model/model.h"

static void print_help(void) {
    printf(
        "usage: medtune eval MODEL [--adapter DIR] --shards DIR [--split val|train]\n"
        "                    [--seq-len N] [--batch N] [--max-windows N] [--json]\n"
        "       medtune eval MODEL [--adapter DIR] --mcq FILE [--format F] [--gold FILE]\n"
        "                    [--limit N] [--max-len N] [--add-special] [--out FILE.jsonl] [--json]\n\n"
        "Perplexity: mean next-token loss over the trained targets of a shard directory's\n"
        "windows (made by `medtune prep` with this model's tokenizer), and exp(loss).\n"
        "Multiple choice: log-likelihood scoring as lm-evaluation-harness does it (acc and\n"
        "acc_norm with 95%% Wilson intervals); prompts are listed in docs/eval.md.\n\n"
        "options:\n"
        "  MODEL              Hugging Face model directory or .gguf file\n"
        "  --adapter DIR      PEFT LoRA adapter applied to the model (default: none)\n"
        "  --json             print the result as one JSON object on stdout\n"
        "  -h, --help         show this help\n"
        "perplexity:\n"
        "  --shards DIR       shard directory written by `medtune prep`\n"
        "  --split S          val or train (default: val)\n"
        "  --seq-len N        window length in tokens (default: 512)\n"
        "  --batch N          windows per forward pass (default: 4)\n"
        "  --max-windows N    evaluate N evenly spaced windows (default: 0 = all)\n"
        "multiple choice:\n"
        "  --mcq FILE         benchmark file: PubMedQA .json, MedQA / MedMCQA .jsonl, MMLU .csv\n"
        "                     or a directory of MMLU .csv files\n"
        "  --format F         pubmedqa, medqa, medmcqa or mmlu (default: guessed from FILE)\n"
        "  --gold FILE        PubMedQA only: JSON PMID -> answer (test_ground_truth.json);\n"
        "                     evaluates only those PMIDs (default: every record of FILE)\n"
        "  --limit N          first N valid items of each file (default: 0 = all)\n"
        "  --max-len N        longest model input; longer contexts lose their start\n"
        "                     (default: the model's max_position_embeddings)\n"
        "  --add-special      tokenize with the tokenizer's special tokens (BOS), like the\n"
        "                     harness's add_bos_token=True (default: off, as the harness)\n"
        "  --out FILE.jsonl   write one JSON line per item (default: none)\n");
}

typedef struct {
    const char *model, *adapter, *shards, *split, *mcq, *format, *gold, *out;
    int seq_len, batch, max_len, add_special, json;
    long long max_windows, limit;
} eval_args;

static int parse_count(const char *opt, const char *s, long long min, long long max,
                       long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return cli_usage_error("eval", "%s expects an integer from %lld to %lld, got '%s'", opt,
                               min, max, s);
    *out = v;
    return 0;
}

// 0 on success, else the exit code of a usage error.
static int parse_args(int argc, char **argv, eval_args *a) {
    memset(a, 0, sizeof *a);
    a->split = "val";
    a->seq_len = 512;
    a->batch = 4;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char **str = !strcmp(o, "--adapter")  ? &a->adapter
                           : !strcmp(o, "--shards") ? &a->shards
                           : !strcmp(o, "--split")  ? &a->split
                           : !strcmp(o, "--mcq")    ? &a->mcq
                           : !strcmp(o, "--format") ? &a->format
                           : !strcmp(o, "--gold")   ? &a->gold
                           : !strcmp(o, "--out")    ? &a->out
                                                    : NULL;
        long long v = 0;
        int rc = 0;
        if (str || !strcmp(o, "--seq-len") || !strcmp(o, "--batch") ||
            !strcmp(o, "--max-windows") || !strcmp(o, "--limit") || !strcmp(o, "--max-len")) {
            if (i + 1 >= argc) return cli_usage_error("eval", "%s needs a value", o);
            const char *val = argv[++i];
            if (str) *str = val;
            else if (!strcmp(o, "--seq-len") && !(rc = parse_count(o, val, 1, 1 << 20, &v)))
                a->seq_len = (int)v;
            else if (!strcmp(o, "--batch") && !(rc = parse_count(o, val, 1, 4096, &v)))
                a->batch = (int)v;
            else if (!strcmp(o, "--max-len") && !(rc = parse_count(o, val, 2, 1 << 20, &v)))
                a->max_len = (int)v;
            else if (!strcmp(o, "--max-windows"))
                rc = parse_count(o, val, 0, LLONG_MAX, &a->max_windows);
            else if (!strcmp(o, "--limit"))
                rc = parse_count(o, val, 0, LLONG_MAX, &a->limit);
            if (rc) return rc;
        } else if (!strcmp(o, "--json")) {
            a->json = 1;
        } else if (!strcmp(o, "--add-special")) {
            a->add_special = 1;
        } else if (o[0] == '-') {
            return cli_usage_error("eval", "unknown option %s", o);
        } else if (!a->model) {
            a->model = o;
        } else {
            return cli_usage_error("eval", "one MODEL expected, got also %s", o);
        }
    }
    if (!a->model) return cli_usage_error("eval", "MODEL missing");
    if (!a->shards == !a->mcq) return cli_usage_error("eval", "give one of --shards DIR or --mcq FILE");
    if (a->out && a->shards) return cli_usage_error("eval", "--out is for --mcq");
    if (strcmp(a->split, "val") && strcmp(a->split, "train"))
        return cli_usage_error("eval", "--split is val or train, got '%s'", a->split);
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

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

static int run_perplexity(const eval_args *a, const model *m, const lora_adapter *lora,
                          const tokenizer *tok) {
    ppl_options o = {a->split, a->seq_len, a->batch, a->max_windows, isatty(2)};
    ppl_result r;
    double t0 = now_s();
    if (perplexity_eval(m, lora, tokenizer_fingerprint(tok), a->model, a->shards, &o, &r))
        return cli_fail();
    double secs = now_s() - t0;
    if (a->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", a->model);
        add_str_or_null(j, "adapter", a->adapter);
        cJSON_AddStringToObject(j, "shards", a->shards);
        cJSON_AddStringToObject(j, "split", a->split);
        cJSON_AddNumberToObject(j, "seq_len", a->seq_len);
        cJSON_AddNumberToObject(j, "windows", (double)r.windows);
        cJSON_AddNumberToObject(j, "windows_total", (double)r.windows_total);
        cJSON_AddNumberToObject(j, "tokens", (double)r.tokens);
        cJSON_AddNumberToObject(j, "loss", r.loss);
        cJSON_AddNumberToObject(j, "ppl", r.ppl);
        cJSON_AddNumberToObject(j, "seconds", secs);
        print_json(j);
    } else {
        printf("%s split of %s: %lld of %lld windows of %d tokens, %lld targets\n", a->split,
               a->shards, (long long)r.windows, (long long)r.windows_total, a->seq_len,
               (long long)r.tokens);
        printf("loss %.6f  ppl %.4f  (%.1f s)\n", r.loss, r.ppl, secs);
    }
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
    mcq_options o = {a->max_len, a->add_special, isatty(2)};
    if (!o.max_len)  // the harness's default too when a config gives no length
        o.max_len = m->cfg.max_position_embeddings > 1 ? m->cfg.max_position_embeddings : 2048;
    mcq_result *res = calloc(s->n, sizeof *res);
    double t0 = now_s();
    int rc = 0;
    if (!res) rc = err_set("eval: out of memory for %zu results", s->n);
    else rc = mcq_score(m, lora, tok, s, &o, res);
    if (!rc && a->out) rc = mcq_results_write(a->out, s, res);
    if (rc) {
        free(res);
        return cli_fail();
    }
    double secs = now_s() - t0;
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

int cmd_eval(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        print_help();
        return 0;
    }
    eval_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    mcq_format f = MCQ_PUBMEDQA;
    mcq_set s = {0};
    if (a.out && out_dir_check(a.out)) return cli_fail();
    if (a.mcq && read_mcq(&a, &f, &s)) return cli_fail();
    model m;
    tokenizer *tok = NULL;
    lora_adapter lora;
    int have_lora = 0, have_model = 0;
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
    rc = a.shards ? run_perplexity(&a, &m, have_lora ? &lora : NULL, tok)
                  : run_mcq(&a, f, &s, &m, have_lora ? &lora : NULL, tok);
done:
    if (have_lora) lora_adapter_free(&lora);
    if (tok) tokenizer_free(tok);
    if (have_model) model_free(&m);
    mcq_set_free(&s);
    return rc;
}
