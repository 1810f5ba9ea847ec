// medtune quickstart [--out DIR] [--model PATH | --tiny] [--steps N] [--threads N]
//                    [--question TEXT]
// The whole pipeline on the sample data in configs/quickstart: prep -> base answer -> LoRA
// training -> PEFT and GGUF export -> merge -> adapter answer and a merged-model check ->
// where everything is and what to try next. Every step calls the library, not the binary.
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/export_source.h"
#include "export/gguf_adapter.h"
#include "export/merge.h"
#include "checkpoints/peft.h"
#include "checkpoints/run_dir.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/strbuf.h"
#include "data_prep/prep.h"
#include "tokenizer/tokenizer.h"
#include "eval/perplexity.h"
#include "tools/commands.h"
#include "tools/quickstart.h"
#include "generate/generate.h"
#include "model/tiny_model.h"
#include "train/train_config.h"
#include "train/trainer.h"

#define QS_STAGES 7
#define QS_DEFAULT_OUT "runs/quickstart"
// In the spirit of the training pairs (HbA1c, diabetes targets) but none of them.
#define QS_DEFAULT_QUESTION "What does an HbA1c of 8% mean for someone with type 2 diabetes?"

// SmolLM2: about 120 tokens per example, two to a 256-token window; 20 steps of 4 windows
// (about 2.5 epochs of the 57 training pairs) change the answers visibly and keep the whole
// quickstart under 5 minutes on 2 cores. The tiny model reads one token per byte.
#define SMOL_STEPS 20
#define TINY_STEPS 30
static const qs_train_settings SMOLLM2_SETTINGS = {8, 16.0f, 1e-3f, 256, 4, SMOL_STEPS, 2, 0, 128};
static const qs_train_settings TINY_SETTINGS = {8, 16.0f, 1e-2f, 512, 4, TINY_STEPS, 3, 0, 64};
// The help shows the step counts above.
#define STRINGIFY(x) STRINGIFY_(x)
#define STRINGIFY_(x) #x

typedef struct {
    const char *out, *model, *question;
    long long steps, threads;
    int tiny;
} qs_args;

static const cli_option OPTIONS[] = {
    {.name = "out", .kind = CLI_STRING, .metavar = "DIR", .offset = offsetof(qs_args, out),
     .help = "run directory; must not exist or be empty",
     .default_text = QS_DEFAULT_OUT ", or " QS_DEFAULT_OUT "-2, -3, ... when it is taken"},
    {.name = "model", .kind = CLI_STRING, .metavar = "PATH", .offset = offsetof(qs_args, model),
     .help = "base model: Hugging Face directory or .gguf file",
     .default_text = "SmolLM2-135M-Instruct as above, else the tiny model"},
    {.name = "tiny", .kind = CLI_FLAG, .offset = offsetof(qs_args, tiny),
     .help = "use the tiny model even when SmolLM2 is available"},
    {.name = "steps", .kind = CLI_INT, .metavar = "N", .offset = offsetof(qs_args, steps),
     .help = "optimizer steps", .min = 1, .max = 1000000,
     .default_text =
         STRINGIFY(SMOL_STEPS) " with SmolLM2, " STRINGIFY(TINY_STEPS) " with the tiny model"},
    {.name = "threads", .kind = CLI_INT, .metavar = "N", .offset = offsetof(qs_args, threads),
     .help = "CPU threads", .min = 1, .max = 1024, .default_text = "all cores"},
    {.name = "question", .kind = CLI_STRING, .metavar = "TEXT",
     .offset = offsetof(qs_args, question),
     .help = "the question both models answer", .default_text = "\"" QS_DEFAULT_QUESTION "\""},
    {0},
};

static void format_duration(char *out, size_t n, double s) {
    if (s < 60) snprintf(out, n, "%.1f s", s);
    else snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

static double t_start;

// "[k/7] what (elapsed)" on stderr, where progress goes.
static void stage(int k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void stage(int k, const char *fmt, ...) {
    char el[32];
    format_duration(el, sizeof el, clock_now_s() - t_start);
    fprintf(stderr, "\n[%d/%d] ", k, QS_STAGES);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "  (%s)\n", el);
}

typedef struct {
    prep_summary prep;
    char *base_answer, *adapter_answer;
    int base_cut, adapter_cut;  // the answer reached max_new tokens
    double val_before, val_after;  // trainer evaluations (metrics.jsonl), NAN when absent
    double loss_adapter, loss_merged;  // perplexity_eval over the whole val split
    int64_t eval_windows;
    int64_t steps;
    char checkpoint[QS_PATH];
    double train_seconds, total_seconds;
} qs_results;

// ---- model -----------------------------------------------------------------------------------

static int choose_model(qs_plan *p, const qs_args *a) {
    p->tiny = 0;
    if (a->model) {
        if (!path_exists(a->model)) return err_set("%s: no such file or directory (--model)", a->model);
        snprintf(p->model, sizeof p->model, "%s", a->model);
        const char *base = strrchr(a->model, '/');
        snprintf(p->model_name, sizeof p->model_name, "%.63s", base && base[1] ? base + 1 : a->model);
        return 0;
    }
    char looked[2048];
    if (!a->tiny && qs_find_model(p->model, sizeof p->model, looked, sizeof looked)) {
        snprintf(p->model_name, sizeof p->model_name, "SmolLM2-135M-Instruct");
        return 0;
    }
    if (!a->tiny)
        fprintf(stderr,
                "medtune: NOTE: %s was not found (looked in %s).\n"
                "medtune: NOTE: using a TINY RANDOMLY INITIALISED model instead: the pipeline runs\n"
                "medtune: NOTE: end to end, but its answers are noise. Run tools/bootstrap.sh (or\n"
                "medtune: NOTE: tools/fetch_smollm2.sh) for the real model, or pass --model.\n",
                QS_MODEL_FILE, looked);
    p->tiny = 1;
    snprintf(p->model_name, sizeof p->model_name, "tiny random model");
    return path_join(p->model, sizeof p->model, p->out, "model");
}

// ---- prep ------------------------------------------------------------------------------------

static int run_prep(const char *config_path, prep_summary *s) {
    config c;
    prep_config pc;
    if (config_load(&c, config_path)) return -1;
    int rc = prep_config_read(&c, &pc);
    config_free(&c);
    if (rc) return -1;
    rc = prep_run(&pc, NULL, NULL, s);
    prep_config_free(&pc);
    return rc;
}

// ---- answers ---------------------------------------------------------------------------------

static void stream_piece(const char *piece, size_t len, void *user) {
    (void)user;
    fwrite(piece, 1, len, stderr);
}

// Greedy answer of base (+ adapter) to the question in the model's chat template, streamed to
// stderr as it is decoded; *answer receives the text.
static int answer(const model *m, const lora_adapter *lora, const tokenizer *tok, const char *question,
                  int max_new, char **out, int *cut) {
    generate_options o;
    generate_options_default(&o, m, tok);
    o.max_new = max_new;
    generate_result res = {0};
    int rc = generate_chat(m, lora, tok, "auto", NULL, question, &o, stream_piece, NULL, &res);
    if (!rc) {
        fprintf(stderr, "%s", res.stop == GENERATE_STOP_EOS ? "\n" : " [...]\n");
        *out = strdup(res.text);
        *cut = res.stop != GENERATE_STOP_EOS;
        if (!*out) rc = err_set("quickstart: out of memory");
    }
    generate_result_free(&res);
    return rc;
}

static int load_model_and_tokenizer(const char *path, model *m, tokenizer **tok) {
    if (model_load(m, path)) return -1;
    if (!(*tok = tokenizer_load(path))) {
        model_free(m);
        return -1;
    }
    return 0;
}

static int base_answer(const qs_plan *p, const char *question, qs_results *r) {
    model m;
    tokenizer *tok;
    if (load_model_and_tokenizer(p->model, &m, &tok)) return -1;
    int rc = answer(&m, NULL, tok, question, p->train.max_new, &r->base_answer, &r->base_cut);
    tokenizer_free(tok);
    model_free(&m);
    return rc;
}

// ---- training --------------------------------------------------------------------------------

// First and last val_loss of metrics.jsonl.
static int read_val_losses(const qs_plan *p, qs_results *r) {
    char path[QS_PATH], *text;
    size_t len;
    r->val_before = r->val_after = NAN;
    if (path_join(path, sizeof path, p->run, "metrics.jsonl") || file_read_all(path, &text, &len))
        return -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "val_loss");
        if (cJSON_IsNumber(v)) {
            if (isnan(r->val_before)) r->val_before = v->valuedouble;
            r->val_after = v->valuedouble;
        }
        cJSON_Delete(j);
    }
    free(text);
    return 0;
}

static int run_training(const qs_plan *p, qs_results *r) {
    train_config tc;
    if (train_config_load(&tc, p->sft_config, NULL, 0)) return -1;
    double t0 = clock_now_s();
    if (trainer_run(&tc, 0)) return -1;
    r->train_seconds = clock_now_s() - t0;
    r->steps = tc.steps;
    if (checkpoint_latest(p->run, r->checkpoint, sizeof r->checkpoint)) return -1;
    return read_val_losses(p, r);
}

// ---- export and merge ------------------------------------------------------------------------

static int export_and_merge(const qs_plan *p, const qs_results *r) {
    export_source s;
    if (export_source_load(&s, r->checkpoint, NULL)) return -1;
    char export_dir[QS_PATH];
    int rc = path_join(export_dir, sizeof export_dir, p->out, "export") || dir_create(export_dir) ||
             peft_adapter_write(p->export_peft, &s.a, s.base_model) ||
             gguf_adapter_write(p->export_gguf, &s.a, &s.mc, "medtune quickstart LoRA");
    export_source_free(&s);
    if (rc) return -1;
    fprintf(stderr, "PEFT adapter   %s\nGGUF adapter   %s\n", p->export_peft, p->export_gguf);
    merge_options mo = {0};
    merge_report rep;
    if (merge_model(p->model, p->export_peft, p->merged, &mo, &rep)) return -1;
    fprintf(stderr, "merged model   %s (%d projections merged, %d tensors, %.1f MiB %s)\n",
            p->merged, rep.n_merged, rep.n_tensors, (double)rep.bytes / (1024.0 * 1024.0),
            rep.dtypes);
    return 0;
}

// ---- adapter answer and the merged model -----------------------------------------------------

static int val_loss(const qs_plan *p, const model *m, const lora_adapter *lora, const char *fingerprint,
                    const char *model_path, double *loss, int64_t *windows) {
    // Attention as the shards were made for (document attention for the packed Q&A), so the
    // loss of base + adapter is training's last val loss over the same windows.
    ppl_options o = {"val", p->train.seq_len, p->train.micro_batch, 0, 0, PPL_ATTENTION_AUTO};
    ppl_result pr;
    if (perplexity_eval(m, lora, fingerprint, model_path, p->shards_qa, &o, &pr)) return -1;
    *loss = pr.loss;
    *windows = pr.windows;
    return 0;
}

static int adapter_answer_and_check(const qs_plan *p, const char *question, qs_results *r) {
    model m;
    tokenizer *tok;
    if (load_model_and_tokenizer(p->model, &m, &tok)) return -1;
    lora_adapter a = {0};
    int rc = peft_adapter_load(p->export_peft, &m.cfg, &a);
    int have_adapter = !rc;
    if (!rc) rc = answer(&m, &a, tok, question, p->train.max_new, &r->adapter_answer,
                         &r->adapter_cut);
    if (!rc) {
        fprintf(stderr, "\nchecking the merged model: val loss of base + adapter and of %s\n",
                p->merged);
        rc = val_loss(p, &m, &a, tokenizer_fingerprint(tok), p->model, &r->loss_adapter,
                      &r->eval_windows);
    }
    if (have_adapter) lora_adapter_free(&a);
    model_free(&m);
    if (!rc) {
        model merged;
        int64_t windows;
        rc = model_load(&merged, p->merged);
        if (!rc) {
            rc = val_loss(p, &merged, NULL, tokenizer_fingerprint(tok), p->merged, &r->loss_merged,
                          &windows);
            model_free(&merged);
        }
    }
    tokenizer_free(tok);
    return rc;
}

// ---- outputs ---------------------------------------------------------------------------------

static int write_answers(const qs_plan *p, const char *question, const qs_results *r) {
    strbuf b;
    strbuf_init(&b);
    strbuf_printf(&b,
                  "# medtune quickstart: answers (greedy decoding)\n\n"
                  "Model: %s (%s)%s\n\nQuestion: %s\n\n"
                  "## Base model\n\n%s\n\n"
                  "## Base model + LoRA adapter (%s, %lld steps)\n\n%s\n",
                  p->model_name, p->model,
                  p->tiny ? " - randomly initialised, its answers are noise" : "", question,
                  r->base_answer, p->run_adapter, (long long)r->steps, r->adapter_answer);
    int rc = strbuf_failed(&b) ? err_prefix("%s", p->answers)
                               : file_write_atomic(p->answers, b.data, b.len);
    strbuf_free(&b);
    return rc;
}

static void add_number(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

static int write_summary(const qs_plan *p, const char *question, const qs_results *r) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", p->model);
    cJSON_AddStringToObject(j, "model_name", p->model_name);
    cJSON_AddBoolToObject(j, "tiny", p->tiny);
    cJSON_AddStringToObject(j, "question", question);
    cJSON *ans = cJSON_AddObjectToObject(j, "answers");
    cJSON_AddStringToObject(ans, "base", r->base_answer);
    cJSON_AddStringToObject(ans, "adapter", r->adapter_answer);
    cJSON *prep = cJSON_AddObjectToObject(j, "prep");
    add_number(prep, "train_examples", (double)r->prep.docs[0]);
    add_number(prep, "val_examples", (double)r->prep.docs[1]);
    add_number(prep, "train_tokens", (double)r->prep.tokens[0]);
    add_number(prep, "val_tokens", (double)r->prep.tokens[1]);
    cJSON *tr = cJSON_AddObjectToObject(j, "train");
    add_number(tr, "steps", (double)r->steps);
    add_number(tr, "seconds", r->train_seconds);
    add_number(tr, "val_loss_before", r->val_before);
    add_number(tr, "val_loss_after", r->val_after);
    cJSON *ck = cJSON_AddObjectToObject(j, "merge_check");
    add_number(ck, "val_loss_base_plus_adapter", r->loss_adapter);
    add_number(ck, "val_loss_merged", r->loss_merged);
    add_number(ck, "windows", (double)r->eval_windows);
    cJSON *paths = cJSON_AddObjectToObject(j, "paths");
    const struct {
        const char *key, *path;
    } list[] = {{"out", p->out},
                {"data_qa", p->data_qa},
                {"data_notes", p->data_notes},
                {"prep_config", p->prep_qa_config},
                {"train_config", p->sft_config},
                {"prep_notes_config", p->prep_notes_config},
                {"dapt_config", p->dapt_config},
                {"shards", p->shards_qa},
                {"run", p->run},
                {"checkpoint", r->checkpoint},
                {"adapter", p->run_adapter},
                {"export_peft", p->export_peft},
                {"export_gguf", p->export_gguf},
                {"merged", p->merged},
                {"answers", p->answers}};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        cJSON_AddStringToObject(paths, list[i].key, list[i].path);
    add_number(j, "seconds", r->total_seconds);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return err_set("%s: out of memory", p->summary);
    int rc = file_write_atomic(p->summary, text, strlen(text));
    free(text);
    return rc;
}

static void print_answer(const char *text, int cut, int max_new) {
    size_t n = strlen(text), blank = strspn(text, " \t\r\n");
    if (blank == n) {  // an untrained tiny model often repeats a newline
        printf("    (%zu whitespace characters)\n", n);
    } else {
        printf("    ");
        for (const char *c = text; *c; c++) {
            putchar(*c);
            if (*c == '\n' && c[1]) printf("    ");
        }
        printf("\n");
    }
    if (cut) printf("    [... stopped after %d tokens]\n", max_new);
}

// Prints "  PATH<pad> what" with PATH padded to `width`.
static void print_path(int width, const char *path, const char *what) {
    printf("  %-*s %s\n", width, path, what);
}

static void print_summary(const qs_plan *p, const char *question, const qs_results *r) {
    char total[32];
    format_duration(total, sizeof total, r->total_seconds);
    printf("\nmedtune quickstart: done in %s with %s (%s)\n", total, p->model_name, p->model);
    if (p->tiny)
        printf("  (a tiny randomly initialised model: the pipeline ran end to end, the answers "
               "are noise)\n");
    printf("\nQuestion: %s\n\n--- base model (greedy) ---\n", question);
    print_answer(r->base_answer, r->base_cut, p->train.max_new);
    printf("\n--- base model + LoRA adapter, %lld steps (greedy) ---\n", (long long)r->steps);
    print_answer(r->adapter_answer, r->adapter_cut, p->train.max_new);
    if (!p->tiny)
        printf("\n(A small model after a short run: the answer changes in length and style; it is\n"
               "not a source of medical advice, and its facts need checking.)\n");
    printf("\nval loss on the held-out answers: %.4f before -> %.4f after training "
           "(ppl %.2f -> %.2f)\n",
           r->val_before, r->val_after, exp(r->val_before), exp(r->val_after));
    printf("merged model check: val loss %.6f, base + adapter %.6f (%lld windows, document "
           "attention)\n",
           r->loss_merged, r->loss_adapter, (long long)r->eval_windows);

    printf("\nWhere everything is (%s):\n", p->out);
    const char *all[] = {p->data_qa, p->configs, p->shards_qa, p->run, r->checkpoint,
                         p->export_peft, p->export_gguf, p->merged, p->answers, p->model};
    int w = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if ((int)strlen(all[i]) > w) w = (int)strlen(all[i]);
    if (w > 40) w = 40;
    print_path(w, p->data_qa, "the sample Q&A, and the clinical notes beside it (written for medtune)");
    print_path(w, p->configs, "prep_medqa.json + sft.json (this run), prep_notes.json + dapt.json");
    print_path(w, p->shards_qa, "tokenized train/val shards + manifest.json");
    print_path(w, p->run, "config.json, metrics.jsonl, checkpoints/, adapter/ (the final PEFT adapter)");
    print_path(w, r->checkpoint, "the last checkpoint (state.h5 + adapter/)");
    print_path(w, p->export_peft, "PEFT adapter exported from it (transformers + peft, vLLM)");
    print_path(w, p->export_gguf, "GGUF LoRA adapter (llama.cpp: llama-cli --lora)");
    print_path(w, p->merged, "merged model, Hugging Face directory (with tokenizer files)");
    print_path(w, p->answers, "the two answers; summary.json: all of this as JSON");
    if (p->tiny) print_path(w, p->model, "the tiny model (config, safetensors, tokenizer)");

    const char *mt = p->medtune;
    printf("\nNext:\n");
    printf("  # ask the tuned model something else\n");
    printf("  %s generate %s --adapter %s --chat \"How should levothyroxine be taken?\"\n", mt,
           p->model, p->run_adapter);
    printf("  # held-out loss without and with the adapter\n");
    printf("  %s eval %s --shards %s --seq-len %d\n", mt, p->model, p->shards_qa, p->train.seq_len);
    printf("  %s eval %s --adapter %s --shards %s --seq-len %d\n", mt, p->model, p->run_adapter,
           p->shards_qa, p->train.seq_len);
    printf("  # training curves as an HTML page\n");
    printf("  %s report %s\n", mt, p->run);
    printf("  # describe the adapter and the checkpoint\n");
    printf("  %s info %s\n  %s info %s\n", mt, p->run_adapter, mt, r->checkpoint);
    printf("  # train longer: resume the run from its last checkpoint\n");
    printf("  %s train %s --resume --set steps=%lld\n", mt, p->sft_config, 2 * (long long)r->steps);
    printf("  # domain adaptation (continued pretraining) on the clinical notes\n");
    printf("  %s prep %s && %s train %s\n", mt, p->prep_notes_config, mt, p->dapt_config);
    printf("  # your own data: see configs/*.json and README.md (The three jobs)\n");
}

// ---- the command -----------------------------------------------------------------------------

static int run_pipeline(const qs_plan *p, const char *question, qs_results *r) {
    stage(1, "run directory %s: sample data from %s", p->out, p->sample_dir);
    if (qs_prepare_out(p)) return -1;
    if (p->tiny) {
        tiny_model_options o;
        tiny_model_options_default(&o);
        if (tiny_model_write(p->model, &o)) return -1;
        fprintf(stderr, "wrote the tiny model (%d layers, hidden %d, %d byte-level tokens) to %s\n",
                o.n_layers, o.hidden_size, TINY_MODEL_VOCAB, p->model);
    }
    if (qs_write_configs(p)) return -1;
    fprintf(stderr, "configs in %s\n", p->configs);

    stage(2, "prep: %s -> %s", p->data_qa, p->shards_qa);
    if (run_prep(p->prep_qa_config, &r->prep)) return -1;
    fprintf(stderr, "%llu Q&A pairs (train %llu, val %llu) in the %s template; %llu train tokens "
                    "(%llu in answers)\n",
            (unsigned long long)r->prep.kept, (unsigned long long)r->prep.docs[0],
            (unsigned long long)r->prep.docs[1], r->prep.template_name,
            (unsigned long long)r->prep.tokens[0], (unsigned long long)r->prep.trained[0]);

    stage(3, "the base model answers (greedy): %s", question);
    if (base_answer(p, question, r)) return -1;

    stage(4, "train: LoRA r=%d on all 7 projections, %d steps of %d x %d tokens -> %s",
          p->train.r, p->train.steps, p->train.micro_batch, p->train.seq_len, p->run);
    if (run_training(p, r)) return -1;

    stage(5, "export the last checkpoint (PEFT, GGUF) and merge it into the base model");
    if (export_and_merge(p, r)) return -1;

    stage(6, "the base model + adapter answers (greedy): %s", question);
    if (adapter_answer_and_check(p, question, r)) return -1;

    stage(7, "summary: %s, %s", p->answers, p->summary);
    r->total_seconds = clock_now_s() - t_start;
    if (write_answers(p, question, r) || write_summary(p, question, r)) return -1;
    return 0;
}

static int run(int argc, char **argv) {
    qs_args a = {0};
    int code;
    if (cli_parse(&QUICKSTART_COMMAND, argc, argv, &a, &code)) return code;
    if (a.tiny && a.model)
        return cli_usage_error("quickstart", "--tiny and --model exclude each other");
    if (a.question && !a.question[0]) return cli_usage_error("quickstart", "--question is empty");
    if (a.out && !a.out[0]) return cli_usage_error("quickstart", "--out is empty");
    t_start = clock_now_s();

    static qs_plan plan;
    qs_plan *p = &plan;
    memset(p, 0, sizeof *p);
    snprintf(p->out, sizeof p->out, "%s", a.out ? a.out : QS_DEFAULT_OUT);
    // Running the quickstart again without --out keeps the earlier runs: runs/quickstart-2, ...
    for (int k = 2; !a.out && k < 1000 && qs_check_out(p) == -1; k++)
        snprintf(p->out, sizeof p->out, "%s-%d", QS_DEFAULT_OUT, k);
    if (qs_check_out(p) || qs_find_samples(p->sample_dir, sizeof p->sample_dir) ||
        choose_model(p, &a) || qs_plan_paths(p))
        return cli_fail();
    p->train = p->tiny ? TINY_SETTINGS : SMOLLM2_SETTINGS;
    if (a.steps) p->train.steps = (int)a.steps;
    if (p->train.warmup >= p->train.steps) p->train.warmup = p->train.steps / 4;
    p->train.threads = (int)a.threads;
    if (a.threads) omp_set_num_threads((int)a.threads);
    const char *question = a.question ? a.question : QS_DEFAULT_QUESTION;
    fprintf(stderr, "medtune quickstart: %s (%s) -> %s\n", p->model_name, p->model, p->out);

    qs_results r;
    memset(&r, 0, sizeof r);
    int rc = run_pipeline(p, question, &r);
    if (!rc) print_summary(p, question, &r);
    free(r.base_answer);
    free(r.adapter_answer);
    return rc ? cli_fail() : 0;
}

const cli_command QUICKSTART_COMMAND = {
    .name = "quickstart",
    .summary = "the whole pipeline on sample medical Q&A: prep, train, export, merge, answers",
    .description =
        "Runs the whole pipeline on the sample medical Q&A in configs/quickstart (written\n"
        "for medtune): prep in the model's chat template, a short LoRA run (r=8, all seven\n"
        "projections), PEFT and GGUF export, merge, and the same question answered by the\n"
        "base model and by base + adapter (greedy). About 3 minutes on 2 cores with\n"
        "SmolLM2-135M-Instruct; seconds with --tiny. Ends with where everything is and the\n"
        "next commands to try.\n\n"
        "The model is SmolLM2-135M-Instruct (" QS_MODEL_FILE ", fetched by\n"
        "tools/bootstrap.sh) from $MEDTUNE_CACHE when it is set, else from the .cache folder\n"
        "next to the executable or in the current directory. When it is not there, a tiny\n"
        "randomly initialised model is written into DIR/model and used instead, and a note\n"
        "says so (the pipeline runs end to end; the answers are noise).\n",
    .options = OPTIONS,
    .run = run,
};
