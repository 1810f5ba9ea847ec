#include "report/report_sections.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/str.h"
#include "report/report_html.h"

#define REPORT_MAX_CHECKPOINTS 4096

static void config_rows(strbuf *b, const cJSON *obj, const char *prefix) {
    for (const cJSON *c = obj->child; c; c = c->next) {
        char key[1024];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", c->string ? c->string : "");
        if (cJSON_IsObject(c) && c->child) {
            config_rows(b, c, key);
            continue;
        }
        strbuf_puts(b, "<tr><th>");
        html_escape(b, key);
        strbuf_puts(b, "</th><td>");
        if (cJSON_IsString(c)) {
            html_escape(b, c->valuestring);
        } else {
            char *text = cJSON_PrintUnformatted(c);
            html_escape(b, text ? text : "?");
            free(text);
        }
        strbuf_puts(b, "</td></tr>\n");
    }
}

void report_config_section(strbuf *b, const cJSON *config, const char *why) {
    strbuf_puts(b, "<section id=\"config\">\n<h2>Configuration</h2>\n");
    if (!config) {
        strbuf_puts(b, "<p class=\"note\">");
        html_escape(b, why);
        strbuf_puts(b, "</p>\n</section>\n");
        return;
    }
    strbuf_puts(b, "<p>The resolved config of the run (config.json: every key, defaults "
                   "filled in).</p>\n<table class=\"kv\">\n");
    config_rows(b, config, "");
    strbuf_puts(b, "</table>\n</section>\n");
}

// The number at a dotted path of a JSON object, or NaN.
static double json_num(const cJSON *o, const char *path) {
    char part[64];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof part) return NAN;
        memcpy(part, path, n);
        part[n] = '\0';
        o = cJSON_GetObjectItemCaseSensitive(o, part);
        path += n + (path[n] == '.');
    }
    return cJSON_IsNumber(o) ? o->valuedouble : NAN;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

static void num_cell(strbuf *b, double v) {
    if (isnan(v)) {
        strbuf_puts(b, "<td>\xE2\x80\x94</td>");
        return;
    }
    strbuf_printf(b, "<td data-value=\"%.17g\">", v);
    if (v == floor(v) && fabs(v) < 1e15) strbuf_printf(b, "%.0f</td>", v);
    else strbuf_printf(b, "%.6g</td>", v);
}

typedef struct {
    const char *role;  // "train", "val", "replay"
    const char *dir;
    cJSON *manifest;   // NULL when unreadable
    char why[4400];
} shard_column;

static void column_load(shard_column *c) {
    char path[4200];
    char *text;
    size_t len;
    snprintf(path, sizeof path, "%s/manifest.json", c->dir);
    if (file_read_all(path, &text, &len)) {
        snprintf(c->why, sizeof c->why, "%s", err_msg());
        err_clear();
        return;
    }
    c->manifest = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(c->manifest)) {
        cJSON_Delete(c->manifest);
        c->manifest = NULL;
        snprintf(c->why, sizeof c->why, "%s: not a JSON object", path);
    }
}

typedef struct {
    const char *key, *label, *path;
} data_row;

static const data_row DATA_ROWS[] = {
    {"files", "input files", "counts.files"},
    {"records_read", "records read", "counts.records_read"},
    {"documents_kept", "documents kept", "counts.documents_kept"},
    {"documents_train", "documents (train split)", "counts.train.documents"},
    {"documents_val", "documents (val split)", "counts.val.documents"},
    {"tokens_train", "tokens (train split)", "counts.train.tokens"},
    {"trained_tokens_train", "trained tokens (train split)", "counts.train.trained_tokens"},
    {"tokens_val", "tokens (val split)", "counts.val.tokens"},
    {"duplicates", "duplicates dropped", "counts.dropped.duplicate"},
    {"empty", "empty documents dropped", "counts.dropped.empty"},
    {"too_short", "too-short documents dropped", "counts.dropped.too_short"},
    {"malformed", "malformed records dropped", "counts.dropped.malformed"},
    {"phi_email", "PHI replaced: e-mail addresses", "counts.phi_replacements.email"},
    {"phi_url", "PHI replaced: URLs", "counts.phi_replacements.url"},
    {"phi_phone", "PHI replaced: phone numbers", "counts.phi_replacements.phone"},
    {"phi_id", "PHI replaced: identifiers", "counts.phi_replacements.id"},
    {"vocab_size", "tokenizer vocabulary", "tokenizer.vocab_size"},
};

static void text_cell(strbuf *b, const char *s) {
    strbuf_puts(b, "<td>");
    html_escape(b, s ? s : "\xE2\x80\x94");
    strbuf_puts(b, "</td>");
}

void report_data_section(strbuf *b, const cJSON *config) {
    strbuf_puts(b, "<section id=\"data\">\n<h2>Data</h2>\n");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(config, "data");
    shard_column cols[3];
    int n = 0;
    static const char *const ROLES[] = {"train", "val", "replay"};
    for (int i = 0; i < 3; i++) {
        const char *dir = json_str(data, ROLES[i]);
        if (!dir) continue;
        cols[n] = (shard_column){ROLES[i], dir, NULL, ""};
        column_load(&cols[n++]);
    }
    if (n == 0) {
        strbuf_puts(b, "<p class=\"note\">The config names no shard directory "
                       "(data.train), so there is no data summary.</p>\n</section>\n");
        return;
    }
    strbuf_puts(b, "<p>From the <code>manifest.json</code> of each shard directory the "
                   "run read (written by <code>medtune prep</code>).</p>\n"
                   "<table class=\"grid\" id=\"data-table\">\n<tr><th></th>");
    for (int i = 0; i < n; i++)
        strbuf_printf(b, "<th data-role=\"%s\">data.%s</th>", cols[i].role, cols[i].role);
    strbuf_puts(b, "</tr>\n<tr data-key=\"path\"><th>directory</th>");
    for (int i = 0; i < n; i++) text_cell(b, cols[i].dir);
    strbuf_puts(b, "</tr>\n<tr data-key=\"manifest\"><th>manifest</th>");
    for (int i = 0; i < n; i++) text_cell(b, cols[i].manifest ? "read" : cols[i].why);
    strbuf_puts(b, "</tr>\n<tr data-key=\"tokenizer\"><th>tokenizer</th>");
    for (int i = 0; i < n; i++) {
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(cols[i].manifest, "tokenizer");
        text_cell(b, json_str(tok, "path"));
    }
    strbuf_puts(b, "</tr>\n<tr data-key=\"packing\"><th>packing / template</th>");
    for (int i = 0; i < n; i++) {
        const char *packing = json_str(cols[i].manifest, "packing");
        const char *tmpl = json_str(cols[i].manifest, "template");
        char both[256];
        snprintf(both, sizeof both, "%s%s%s", packing ? packing : "\xE2\x80\x94",
                 tmpl ? " / " : "", tmpl ? tmpl : "");
        text_cell(b, cols[i].manifest ? both : NULL);
    }
    strbuf_puts(b, "</tr>\n");
    for (size_t r = 0; r < sizeof DATA_ROWS / sizeof DATA_ROWS[0]; r++) {
        strbuf_printf(b, "<tr data-key=\"%s\"><th>%s</th>", DATA_ROWS[r].key, DATA_ROWS[r].label);
        for (int i = 0; i < n; i++) num_cell(b, json_num(cols[i].manifest, DATA_ROWS[r].path));
        strbuf_puts(b, "</tr>\n");
    }
    strbuf_puts(b, "</table>\n</section>\n");
    for (int i = 0; i < n; i++) cJSON_Delete(cols[i].manifest);
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static void checkpoint_row(strbuf *b, const char *dir, const char *name, const char *latest) {
    char path[4400];
    int partial = str_has_suffix(name, ".tmp");
    snprintf(path, sizeof path, "%s/%s/state.h5", dir, name);
    long long state = file_size(path);
    snprintf(path, sizeof path, "%s/%s/adapter/adapter_model.safetensors", dir, name);
    long long adapter = file_size(path);
    int is_latest = latest && !strcmp(name, latest);
    strbuf_printf(b, "<tr%s><td>", is_latest ? " class=\"latest\"" : "");
    html_escape(b, name);
    strbuf_printf(b, "%s</td><td>%s</td>", is_latest ? " (latest)" : "",
                  partial                      ? "incomplete (interrupted write)"
                  : state >= 0 && adapter >= 0 ? "complete"
                                               : "missing files");
    if (state >= 0) strbuf_printf(b, "<td>%.1f kB</td>", (double)state / 1024);
    else strbuf_puts(b, "<td>\xE2\x80\x94</td>");
    if (adapter >= 0) strbuf_printf(b, "<td>%.1f kB</td></tr>\n", (double)adapter / 1024);
    else strbuf_puts(b, "<td>\xE2\x80\x94</td></tr>\n");
}

// The name in OUT/checkpoints/latest without its newline, or NULL.
static char *read_latest(const char *dir) {
    char path[4300];
    char *text;
    size_t len;
    snprintf(path, sizeof path, "%s/latest", dir);
    if (!path_exists(path) || file_read_all(path, &text, &len)) {
        err_clear();
        return NULL;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = '\0';
    return text;
}

void report_checkpoints_section(strbuf *b, const char *run_dir) {
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    strbuf_puts(b, "<section id=\"checkpoints\">\n<h2>Checkpoints</h2>\n");
    snprintf(path, sizeof path, "%s/adapter/adapter_model.safetensors", run_dir);
    strbuf_printf(b, "<p id=\"final-adapter\">Final adapter (<code>adapter/</code>): %s</p>\n",
                  path_exists(path) ? "written"
                                    : "not written yet (the run is in progress or was stopped)");
    DIR *d = opendir(dir);
    if (!d) {
        strbuf_puts(b, "<p class=\"note\">No checkpoints directory.</p>\n</section>\n");
        return;
    }
    char **names = malloc(REPORT_MAX_CHECKPOINTS * sizeof *names);
    size_t n = 0;
    for (struct dirent *e; names && (e = readdir(d)) && n < REPORT_MAX_CHECKPOINTS;)
        if (!strncmp(e->d_name, "step_", 5) && (names[n] = strdup(e->d_name))) n++;
    closedir(d);
    if (names) qsort(names, n, sizeof *names, name_cmp);
    char *latest = read_latest(dir);
    strbuf_puts(b, "<p id=\"latest\"><code>checkpoints/latest</code>: ");
    html_escape(b, latest ? latest : "absent (no complete checkpoint yet)");
    strbuf_puts(b, "</p>\n");
    if (n == 0) {
        strbuf_puts(b, "<p class=\"note\">No checkpoint has been written.</p>\n");
    } else {
        strbuf_puts(b, "<table class=\"grid\" id=\"checkpoint-table\">\n<tr><th>checkpoint"
                       "</th><th>status</th><th>state.h5</th><th>adapter</th></tr>\n");
        for (size_t i = 0; i < n; i++) checkpoint_row(b, dir, names[i], latest);
        strbuf_puts(b, "</table>\n");
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    free(latest);
    strbuf_puts(b, "</section>\n");
}
