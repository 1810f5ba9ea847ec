// `medtune quickstart` setup: where the sample data and the model are, the run directory's
// layout, its copy of the data and the configs it leaves for the user.
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/strbuf.h"
#include "tools/quickstart.h"

int qs_exe_dir(char *dir, size_t n) {
    ssize_t len = readlink("/proc/self/exe", dir, n - 1);
    if (len <= 0 || (size_t)len >= n - 1) return err_set("/proc/self/exe: cannot read the executable's path");
    dir[len] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
    return 0;
}

// The checkout this binary was compiled from (CMake passes absolute source paths), or "".
static void source_root(char *dir, size_t n) {
    const char *file = __FILE__;
    const char *tail = strstr(file, "/tools/quickstart_setup.c");
    if (file[0] != '/' || !tail || (size_t)(tail - file) >= n) {
        dir[0] = '\0';
        return;
    }
    memcpy(dir, file, (size_t)(tail - file));
    dir[tail - file] = '\0';
}

// `path` made absolute and free of ".." (realpath), then relative to the current directory when
// it lies inside it, so printed commands stay short.
static void path_tidy(char *path, size_t n) {
    char real[PATH_MAX], cwd[PATH_MAX];
    if (!realpath(path, real)) return;
    size_t k = 0;
    if (getcwd(cwd, sizeof cwd)) {
        k = strlen(cwd);
        if (strncmp(real, cwd, k) || real[k] != '/') k = 0;
        else k++;
    }
    if (strlen(real + k) < n) snprintf(path, n, "%s", real + k);
}

// Candidate directories in search order: next to the executable, the current directory,
// the source tree. `sub` is appended to each ("configs/quickstart", ".cache").
static int candidates(char out[4][QS_PATH], const char *sub) {
    char exe[QS_PATH], src[QS_PATH];
    int n = 0;
    if (!qs_exe_dir(exe, sizeof exe)) {
        snprintf(out[n++], QS_PATH, "%.2000s/../%.1000s", exe, sub);
        snprintf(out[n++], QS_PATH, "%.2000s/%.1000s", exe, sub);
    }
    snprintf(out[n++], QS_PATH, "%.1000s", sub);
    source_root(src, sizeof src);
    if (src[0]) snprintf(out[n++], QS_PATH, "%.2000s/%.1000s", src, sub);
    return n;
}

int qs_find_samples(char *dir, size_t n) {
    char c[4][QS_PATH];
    int k = candidates(c, "configs/quickstart");
    for (int i = 0; i < k; i++) {
        char qa[QS_PATH], notes[QS_PATH];
        if (path_join(qa, sizeof qa, c[i], QS_QA_FILE) ||
            path_join(notes, sizeof notes, c[i], QS_NOTES_FILE))
            continue;
        if (path_exists(qa) && path_exists(notes)) {
            snprintf(dir, n, "%s", c[i]);
            path_tidy(dir, n);
            return 0;
        }
    }
    return err_set("configs/quickstart: the sample data (%s, %s) is neither next to the "
                   "executable, in the current directory nor in the source tree; run medtune "
                   "from its checkout",
                   QS_QA_FILE, QS_NOTES_FILE);
}

int qs_find_model(char *path, size_t n, char *looked, size_t looked_n) {
    char c[5][QS_PATH];
    int k = 0;
    const char *cache = getenv("MEDTUNE_CACHE");
    if (cache && cache[0]) snprintf(c[k++], QS_PATH, "%.4000s", cache);
    else k += candidates(c + k, ".cache");
    size_t used = 0;
    looked[0] = '\0';
    for (int i = 0; i < k; i++) {
        char p[QS_PATH];
        if (!path_join(p, sizeof p, c[i], QS_MODEL_FILE) && path_exists(p)) {
            snprintf(path, n, "%s", p);
            path_tidy(path, n);
            return 1;
        }
        if (used < looked_n)
            used += (size_t)snprintf(looked + used, looked_n - used, "%s%s", i ? ", " : "", c[i]);
    }
    return 0;
}

static int join(char *out, const char *a, const char *b) { return path_join(out, QS_PATH, a, b); }

int qs_plan_paths(qs_plan *p) {
    const char *o = p->out;
    if (join(p->data_qa, o, "data/" QS_QA_FILE) || join(p->data_notes, o, "data/" QS_NOTES_FILE) ||
        join(p->configs, o, "configs") || join(p->prep_qa_config, p->configs, "prep_medqa.json") ||
        join(p->sft_config, p->configs, "sft.json") ||
        join(p->prep_notes_config, p->configs, "prep_notes.json") ||
        join(p->dapt_config, p->configs, "dapt.json") || join(p->shards_qa, o, "shards/medqa") ||
        join(p->shards_notes, o, "shards/notes") || join(p->run, o, "run") ||
        join(p->run_adapter, p->run, "adapter") || join(p->dapt_run, o, "dapt") ||
        join(p->export_peft, o, "export/peft") || join(p->export_gguf, o, "export/adapter.gguf") ||
        join(p->merged, o, "merged") || join(p->answers, o, "answers.md") ||
        join(p->summary, o, "summary.json"))
        return -1;
    char exe[QS_PATH];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return err_set("/proc/self/exe: cannot read the executable's path");
    exe[len] = '\0';
    path_tidy(exe, sizeof exe);
    // A bare name would be looked up in PATH by the shell.
    snprintf(p->medtune, sizeof p->medtune, "%s%.4000s", strchr(exe, '/') ? "" : "./", exe);
    return 0;
}

static int copy_file(const char *from, const char *to) {
    char *text;
    size_t len;
    if (file_read_all(from, &text, &len)) return -1;
    int rc = file_write_atomic(to, text, len);
    free(text);
    return rc;
}

int qs_check_out(const qs_plan *p) {
    if (path_exists(p->out) && !(path_is_dir(p->out) && dir_is_empty(p->out)))
        return err_set("%s: already exists and is not empty; remove it or choose another --out",
                       p->out);
    return 0;
}

int qs_prepare_out(const qs_plan *p) {
    if (qs_check_out(p)) return -1;
    char data[QS_PATH], from[QS_PATH];
    if (join(data, p->out, "data") || dir_create(data) || dir_create(p->configs)) return -1;
    if (join(from, p->sample_dir, QS_QA_FILE) || copy_file(from, p->data_qa)) return -1;
    if (join(from, p->sample_dir, QS_NOTES_FILE) || copy_file(from, p->data_notes)) return -1;
    return 0;
}

// Appends `s` as a JSON string literal (quotes and escapes included).
static void put_json_string(strbuf *b, const char *s) {
    cJSON *j = cJSON_CreateString(s);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    if (text) strbuf_puts(b, text);
    else b->failed = 1;
    free(text);
    cJSON_Delete(j);
}

// Text of the config, built by `fill`, written atomically to `path`.
static int write_config(const char *path, const qs_plan *p,
                        void (*fill)(strbuf *, const qs_plan *)) {
    strbuf b;
    strbuf_init(&b);
    fill(&b, p);
    int rc = strbuf_failed(&b) ? err_set("%s: out of memory", path)
                               : file_write_atomic(path, b.data, b.len);
    strbuf_free(&b);
    return rc;
}

// A prep config after its header comment: one input file of `format`, then `keys` (whole
// lines), dedup and out_dir.
static void put_prep_config(strbuf *b, const qs_plan *p, const char *input, const char *format,
                            const char *keys, const char *out_dir) {
    strbuf_puts(b, "{\n  \"tokenizer\": ");
    put_json_string(b, p->model);
    strbuf_puts(b, ",\n  \"inputs\": [{\"path\": ");
    put_json_string(b, input);
    strbuf_printf(b, ", \"format\": \"%s\"}],\n%s  \"dedup\": true,\n  \"out_dir\": ", format, keys);
    put_json_string(b, out_dir);
    strbuf_puts(b, "\n}\n");
}

static void put_targets(strbuf *b) {
    strbuf_puts(b, "\"targets\": [\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", \"gate_proj\",\n"
                   "                       \"up_proj\", \"down_proj\"]");
}

// A train config after its header comment, up to the LoRA targets: the model, the shards
// (`note` after them: a comment or ""), the adapter with `dropout` (as written).
static void put_train_start(strbuf *b, const qs_plan *p, const char *shards, const char *note,
                            const char *dropout) {
    strbuf_puts(b, "{\n  \"model\": ");
    put_json_string(b, p->model);
    strbuf_puts(b, ",\n  \"data\": {\"train\": ");
    put_json_string(b, shards);
    strbuf_printf(b, "},%s\n  \"lora\": {\"r\": %d, \"alpha\": %g, \"dropout\": %s,\n           ",
                  note, p->train.r, (double)p->train.alpha, dropout);
    put_targets(b);
}

static void fill_prep_qa(strbuf *b, const qs_plan *p) {
    strbuf_printf(b,
                  "// medtune prep: the quickstart's medical Q&A (Alpaca JSONL written for\n"
                  "// medtune), rendered in the model's chat template; prompt tokens are masked,\n"
                  "// answers trained. Written by `medtune quickstart`. Run again:\n"
                  "//   %s prep %s\n",
                  p->medtune, p->prep_qa_config);
    put_prep_config(b, p, p->data_qa, "alpaca",
                    "  // \"auto\" reads the model's chat_template (SmolLM2: chatml with its\n"
                    "  // default system prompt).\n"
                    "  \"template\": \"auto\",\n"
                    "  \"val_fraction\": 0.1,   // one pair in ten is held out for the val loss\n",
                    p->shards_qa);
}

static void fill_sft(strbuf *b, const qs_plan *p) {
    const qs_train_settings *t = &p->train;
    strbuf_printf(b,
                  "// medtune train: the quickstart's instruction-tuning run on %s: a short\n"
                  "// LoRA run on the sample Q&A, loss on the answers only. Written by\n"
                  "// `medtune quickstart`.\n"
                  "//   %s prep %s\n"
                  "//   %s train %s\n"
                  "// Train longer (continues from the last checkpoint, same data and settings):\n"
                  "//   %s train %s --resume --set steps=%d\n",
                  p->model_name, p->medtune, p->prep_qa_config, p->medtune, p->sft_config,
                  p->medtune, p->sft_config, 2 * t->steps);
    put_train_start(b, p, p->shards_qa, "   // its val split gives the val loss", "0.0");
    strbuf_printf(b,
                  "},\n"
                  "  // A high learning rate: the run is short, and the answers should visibly\n"
                  "  // change.\n"
                  "  \"optim\": {\"lr\": %g, \"weight_decay\": 0.0, \"grad_clip\": 1.0},\n"
                  "  \"schedule\": {\"warmup_steps\": %d, \"decay\": \"cosine\", "
                  "\"min_lr_ratio\": 0.0},\n"
                  "  \"batch\": {\"micro_batch\": %d, \"seq_len\": %d, \"grad_accum\": 1},\n"
                  "  \"steps\": %d,\n"
                  "  \"shuffle\": true,\n"
                  "  \"seed\": 42,\n"
                  "  \"threads\": %d,          // 0 = all cores\n"
                  "  \"eval_every\": %d,      // val loss before the first step and at the end\n"
                  "  \"eval_batches\": 8,\n"
                  "  \"save_every\": %d,\n"
                  "  \"keep_last\": 2,\n"
                  "  // Examples are packed whole into windows; attention stays inside each one.\n"
                  "  \"doc_attention\": \"document\",\n"
                  "  \"out_dir\": ",
                  (double)t->lr, t->warmup, t->micro_batch, t->seq_len, t->steps, t->threads,
                  t->steps, t->steps > 1 ? t->steps / 2 : 1);
    put_json_string(b, p->run);
    strbuf_puts(b, "\n}\n");
}

static void fill_prep_notes(strbuf *b, const qs_plan *p) {
    strbuf_printf(b,
                  "// medtune prep: clinical notes (plain text, one document per paragraph) for\n"
                  "// domain adaptation, i.e. continued pretraining where every token is trained.\n"
                  "// Written by `medtune quickstart`; for real runs use PubMed\n"
                  "// (configs/prep_pubmed.json).\n"
                  "//   %s prep %s\n",
                  p->medtune, p->prep_notes_config);
    put_prep_config(b, p, p->data_notes, "text",
                    "  \"val_fraction\": 0.0,   // seven paragraphs: too few to hold any out\n",
                    p->shards_notes);
}

static void fill_dapt(strbuf *b, const qs_plan *p) {
    const qs_train_settings *t = &p->train;
    strbuf_printf(b,
                  "// medtune train: domain adaptation on the quickstart's clinical notes (a\n"
                  "// text stream, causal attention over whole windows). Written by\n"
                  "// `medtune quickstart`.\n"
                  "//   %s prep %s\n"
                  "//   %s train %s\n"
                  "// Stop it with Ctrl-C (a checkpoint is written) and continue with:\n"
                  "//   %s train %s --resume\n",
                  p->medtune, p->prep_notes_config, p->medtune, p->dapt_config, p->medtune,
                  p->dapt_config);
    put_train_start(b, p, p->shards_notes, "", "0.05");
    strbuf_printf(b,
                  "},\n"
                  "  \"optim\": {\"lr\": 2e-4, \"weight_decay\": 0.0, \"grad_clip\": 1.0},\n"
                  "  \"schedule\": {\"warmup_steps\": 2, \"decay\": \"cosine\", "
                  "\"min_lr_ratio\": 0.1},\n"
                  "  \"batch\": {\"micro_batch\": 2, \"seq_len\": %d, \"grad_accum\": 1},\n"
                  "  \"steps\": 10,\n"
                  "  \"shuffle\": true,\n"
                  "  \"seed\": 42,\n"
                  "  \"threads\": %d,          // 0 = all cores\n"
                  "  \"save_every\": 5,\n"
                  "  \"keep_last\": 2,\n"
                  "  \"doc_attention\": \"causal\",\n"
                  "  \"out_dir\": ",
                  p->tiny ? 256 : 128, t->threads);
    put_json_string(b, p->dapt_run);
    strbuf_puts(b, "\n}\n");
}

int qs_write_configs(const qs_plan *p) {
    if (write_config(p->prep_qa_config, p, fill_prep_qa) || write_config(p->sft_config, p, fill_sft) ||
        write_config(p->prep_notes_config, p, fill_prep_notes) ||
        write_config(p->dapt_config, p, fill_dapt))
        return -1;
    return 0;
}
