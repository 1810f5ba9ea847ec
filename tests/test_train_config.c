// The config keys are defined once, in the tables of train/train_config.c and
// data_prep/prep_config.c. This test holds the documentation and the parsers to them:
//   doc-train DOCS/config.md  the `medtune train` table lists exactly the table's keys, in its
//                             order, with the same defaults and meanings
//   doc-prep DOCS/prep.md     the same for the `medtune prep` table
//   defaults                  every default a table prints is the value the parser uses: a
//                             config without the key resolves exactly as one that sets it to
//                             the printed default (and lora.alpha follows its rule, 2 r)
// A failure names the first difference and prints the row the document should have.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/error.h"
#include "common/fileio.h"
#include "data_prep/prep.h"
#include "tests/testlib.h"
#include "train/train_config.h"

typedef struct {
    const char *key, *def, *meaning;
} doc_row;

// Copies cell `i` of a markdown table row ("| a | b | c |") into out, trimmed.
static int row_cell(const char *line, int i, char *out, size_t n) {
    const char *p = line;
    for (int k = 0; k <= i; k++) {
        p = strchr(p, '|');
        if (!p) return -1;
        p++;
    }
    const char *end = strchr(p, '|');
    if (!end) return -1;
    while (*p == ' ') p++;
    while (end > p && end[-1] == ' ') end--;
    snprintf(out, n, "%.*s", (int)(end - p), p);
    return 0;
}

// Compares the table that follows `heading` in the markdown file `path` with `rows`, and fails
// at the first difference, naming the line.
static void check_doc(const char *path, const char *heading, const char *source,
                      const doc_row *rows, size_t n_rows) {
    char *text;
    if (file_read_all(path, &text, NULL)) test_fail("%s", err_msg());
    char *at = strstr(text, heading);
    if (!at) test_fail("%s: no heading '%s'", path, heading);
    int lineno = 1;
    for (char *p = text; p < at; p++) lineno += *p == '\n';
    size_t k = 0;
    for (char *line = at; line && *line; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (line != at && line[0] == '#') break;
        if (!strncmp(line, "| `", 3)) {
            char key[128], def[128], meaning[512];
            if (row_cell(line, 0, key, sizeof key) || row_cell(line, 1, def, sizeof def) ||
                row_cell(line, 2, meaning, sizeof meaning))
                test_fail("%s:%d: not a | key | default | meaning | row: %s", path, lineno, line);
            size_t len = strlen(key);
            if (len > 2) memmove(key, key + 1, len - 2), key[len - 2] = '\0';
            if (k == n_rows) test_fail("%s:%d: `%s` is not a key of %s", path, lineno, key, source);
            const doc_row *r = &rows[k++];
            const char *what = strcmp(key, r->key) ? "key" : strcmp(def, r->def) ? "default"
                               : strcmp(meaning, r->meaning) ? "meaning" : NULL;
            if (what)
                test_fail("%s:%d: the %s differs from %s:\n  doc:      %s\n"
                          "  expected: | `%s` | %s | %s |",
                          path, lineno, what, source, line, r->key, r->def, r->meaning);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    if (k < n_rows)
        test_fail("%s: the table under '%s' ends after %zu rows; %s also has `%s`:\n"
                  "  expected: | `%s` | %s | %s |",
                  path, heading, k, source, rows[k].key, rows[k].key, rows[k].def, rows[k].meaning);
    printf("ok: %s lists the %zu keys of %s with their defaults and meanings\n", path, n_rows,
           source);
}

static void doc_train(const char *path) {
    size_t n;
    const train_config_key *keys = train_config_keys(&n);
    doc_row *rows = calloc(n, sizeof *rows);
    if (!rows) test_fail("out of memory");
    for (size_t i = 0; i < n; i++) rows[i] = (doc_row){keys[i].key, keys[i].def, keys[i].meaning};
    check_doc(path, "## `medtune train`", "train/train_config.c", rows, n);
    free(rows);
}

static void doc_prep(const char *path) {
    size_t n;
    const prep_config_key *keys = prep_config_keys(&n);
    doc_row *rows = calloc(n, sizeof *rows);
    if (!rows) test_fail("out of memory");
    for (size_t i = 0; i < n; i++) rows[i] = (doc_row){keys[i].key, keys[i].def, keys[i].meaning};
    check_doc(path, "## Config", "data_prep/prep_config.c", rows, n);
    free(rows);
}

// The value a printed default stands for, as the docs describe them: "`cosine`" -> cosine,
// "0 (all cores)" -> 0. Written independently of the parsers' own reading.
static void literal_of(const char *def, char *out, size_t n) {
    snprintf(out, n, "%s", def);
    char *note = strstr(out, " (");
    if (note) *note = '\0';
    size_t len = strlen(out);
    if (len >= 2 && out[0] == '`' && out[len - 1] == '`') {
        memmove(out, out + 1, len - 2);
        out[len - 2] = '\0';
    }
}

static const char TRAIN_MINIMAL[] =
    "{\"model\": \"m\", \"data\": {\"train\": \"d\"}, \"out_dir\": \"o\"}";

// The resolved config.json of the minimal config with `set` applied ("" = nothing).
static cJSON *train_resolved(const char *set) {
    config c;
    train_config tc;
    if (config_parse(&c, TRAIN_MINIMAL, "minimal.json") || (set[0] && config_set(&c, set)) ||
        train_config_from_json(&tc, c.root, "minimal.json"))
        test_fail("%s: %s", set, err_msg());
    config_free(&c);
    return train_config_to_json(&tc);
}

static void defaults_train(void) {
    size_t n, checked = 0;
    const train_config_key *keys = train_config_keys(&n);
    cJSON *base = train_resolved("");
    for (size_t i = 0; i < n; i++) {
        const train_config_key *k = &keys[i];
        if (k->rule || k->type == TRAIN_KEY_PATH || !strcmp(k->def, "none")) continue;
        char lit[128], set[256];
        literal_of(k->def, lit, sizeof lit);
        snprintf(set, sizeof set, "%s=%s", k->key, lit);
        cJSON *explicit = train_resolved(set);
        if (!cJSON_Compare(base, explicit, 1)) {
            char *a = cJSON_PrintUnformatted(base), *b = cJSON_PrintUnformatted(explicit);
            test_fail("train: %s is documented as default %s, but setting it changes the resolved "
                      "config:\n  without: %s\n  with:    %s", k->key, k->def, a, b);
        }
        cJSON_Delete(explicit);
        checked++;
    }
    cJSON_Delete(base);
    cJSON *r4 = train_resolved("lora.r=4");
    const cJSON *alpha = cJSON_GetObjectItem(cJSON_GetObjectItem(r4, "lora"), "alpha");
    if (!cJSON_IsNumber(alpha) || alpha->valuedouble != 8.0)
        test_fail("train: lora.alpha's default is 2 r, but r = 4 gave alpha %g",
                  cJSON_IsNumber(alpha) ? alpha->valuedouble : -1.0);
    cJSON_Delete(r4);
    printf("ok: %zu train defaults equal their explicit values; lora.alpha = 2 r\n", checked);
}

static const char PREP_MINIMAL[] = "{\"tokenizer\": \"t\", \"inputs\": [{\"path\": \"x\", "
                                   "\"format\": \"text\"}], \"out_dir\": \"o\"}";

static void prep_read(prep_config *pc, const char *set) {
    config c;
    if (config_parse(&c, PREP_MINIMAL, "minimal.json") || (set[0] && config_set(&c, set)) ||
        prep_config_read(&c, pc))
        test_fail("%s: %s", set, err_msg());
    config_free(&c);
}

static int prep_same(const prep_config *a, const prep_config *b, const prep_config_key *k) {
    const void *x = (const char *)a + k->offset, *y = (const char *)b + k->offset;
    switch (k->type) {
    case PREP_KEY_STRING: return !strcmp(*(char *const *)x, *(char *const *)y);
    case PREP_KEY_NUMBER: return *(const double *)x == *(const double *)y;
    case PREP_KEY_INT: return *(const long long *)x == *(const long long *)y;
    case PREP_KEY_BOOL: return *(const int *)x == *(const int *)y;
    case PREP_KEY_INPUTS: return 1;
    }
    return 0;
}

static void defaults_prep(void) {
    size_t n, checked = 0;
    const prep_config_key *keys = prep_config_keys(&n);
    prep_config base;
    prep_read(&base, "");
    for (size_t i = 0; i < n; i++) {
        const prep_config_key *k = &keys[i];
        if (!strcmp(k->def, "required")) continue;
        char lit[128], set[256];
        literal_of(k->def, lit, sizeof lit);
        snprintf(set, sizeof set, "%s=%s", k->key, lit);
        prep_config explicit;
        prep_read(&explicit, set);
        if (!prep_same(&base, &explicit, k))
            test_fail("prep: %s is documented as default %s, but setting it reads differently",
                      k->key, k->def);
        prep_config_free(&explicit);
        checked++;
    }
    prep_config_free(&base);
    printf("ok: %zu prep defaults equal their explicit values\n", checked);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "doc-train")) doc_train(argv[2]);
    else if (argc == 3 && !strcmp(argv[1], "doc-prep")) doc_prep(argv[2]);
    else if (argc == 2 && !strcmp(argv[1], "defaults")) defaults_train(), defaults_prep();
    else test_fail("usage: test_train_config doc-train CONFIG.md | doc-prep PREP.md | defaults");
    return 0;
}
