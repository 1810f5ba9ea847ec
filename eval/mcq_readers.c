// Readers for the original benchmark files in ../shared/data: PubMedQA (a JSON object PMID ->
// {QUESTION, CONTEXTS, final_decision}, optionally with test_ground_truth.json's PMID ->
// decision), MedQA (JSON lines: question, options {A..}, answer_idx), MedMCQA (JSON lines:
// question, opa..opd, cop 1-4, id) and MMLU (headerless CSV: question, 4 options, letter).
// A record that does not have the fields it needs is skipped and counted; the first one is
// remembered with its location for the report.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/json_number.h"
#include "common/str.h"
#include "common/strbuf.h"
#include "eval/csv_reader.h"
#include "eval/mcq.h"

static const char *const LETTERS[MCQ_MAX_CHOICES] = {"A", "B", "C", "D", "E", "F", "G", "H"};
static const char *const DECISIONS[3] = {"yes", "no", "maybe"};

static const char *const FORMAT_NAMES[] = {"pubmedqa", "medqa", "medmcqa", "mmlu"};

int mcq_format_from_name(const char *name, mcq_format *out) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, FORMAT_NAMES[i])) {
            *out = (mcq_format)i;
            return 0;
        }
    return err_set("--format %s: unknown format (pubmedqa, medqa, medmcqa or mmlu)", name);
}

const char *mcq_format_name(mcq_format f) { return FORMAT_NAMES[f]; }

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void mcq_set_free(mcq_set *s) {
    for (size_t i = 0; i < s->n; i++) {
        free(s->items[i].id);
        free(s->items[i].context);
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}

// Takes ownership of id and context (freed on failure).
static int set_push(mcq_set *s, char *id, char *context, const char *const *choices, int n,
                    int gold) {
    if (!id || !context) {
        free(id);
        free(context);
        return err_set("mcq: out of memory");
    }
    mcq_item *p = vec_grow(s->items, &s->cap, s->n + 1, sizeof *p);
    if (!p) {
        free(id);
        free(context);
        return err_set("mcq: out of memory for %zu items", s->n + 1);
    }
    s->items = p;
    mcq_item *it = &s->items[s->n++];
    memset(it, 0, sizeof *it);
    it->id = id;
    it->context = context;
    it->n_choices = n;
    for (int i = 0; i < n; i++) it->choices[i] = choices[i];
    it->gold = gold;
    return 0;
}

static void note_skip(mcq_set *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_skip(mcq_set *s, const char *fmt, ...) {
    if (s->n_skipped++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->first_skip, sizeof s->first_skip, fmt, ap);
        va_end(ap);
    }
}

static char *location_id(const char *path, unsigned long long line) {
    char buf[4400];
    snprintf(buf, sizeof buf, "%s:%llu", base_name(path), line);
    return strdup(buf);
}

// The line and column of byte `off` of `text`, for parse errors.
static void line_col(const char *text, size_t off, size_t *line, size_t *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

// Parses one JSON value that must fill [text, text+len) up to JSON whitespace, as Python's
// json.loads requires (cJSON alone accepts trailing garbage). On failure *err_at points at the
// offending byte.
static cJSON *json_parse_exact(const char *text, size_t len, const char **err_at) {
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!v) {
        *err_at = cJSON_GetErrorPtr();
        return NULL;
    }
    while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) end++;
    if (end < text + len) {
        cJSON_Delete(v);
        *err_at = end;
        return NULL;
    }
    return v;
}

static cJSON *parse_json_file(const char *path, char **text_out) {
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len)) return NULL;
    const char *at = NULL;
    cJSON *root = json_parse_exact(text, len, &at);
    if (!root) {
        size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : 0, line, col;
        line_col(text, off, &line, &col);
        free(text);
        err_set("%s:%zu:%zu: not valid JSON", path, line, col);
        return NULL;
    }
    *text_out = text;
    return root;
}

static int decision_index(const cJSON *v) {
    if (!cJSON_IsString(v)) return -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(v->valuestring, DECISIONS[i])) return i;
    return -1;
}

static int read_pubmedqa(mcq_set *s, const char *path, size_t limit, const char *gold_path) {
    char *text = NULL, *gold_text = NULL;
    cJSON *root = parse_json_file(path, &text), *gold = NULL;
    if (!root) return -1;
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = err_set("%s: expected a JSON object PMID -> {QUESTION, CONTEXTS, final_decision} "
                     "(PubMedQA's ori_pqal.json or test_set.json)", path);
        goto done;
    }
    if (gold_path) {
        if (!(gold = parse_json_file(gold_path, &gold_text))) {
            rc = -1;
            goto done;
        }
        if (!cJSON_IsObject(gold)) {
            rc = err_set("%s: expected a JSON object PMID -> \"yes\"|\"no\"|\"maybe\"", gold_path);
            goto done;
        }
        for (const cJSON *g = gold->child; g; g = g->next) {
            if (decision_index(g) < 0) {
                rc = err_set("%s: PMID %s: the answer must be \"yes\", \"no\" or \"maybe\"",
                             gold_path, g->string);
                goto done;
            }
            if (!cJSON_GetObjectItemCaseSensitive(root, g->string)) {
                rc = err_set("%s: PMID %s is not in %s", gold_path, g->string, path);
                goto done;
            }
        }
    }
    size_t kept = 0;
    for (const cJSON *rec = root->child; rec && (!limit || kept < limit); rec = rec->next) {
        const cJSON *g = gold ? cJSON_GetObjectItemCaseSensitive(gold, rec->string) : NULL;
        if (gold && !g) continue;
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(rec, "QUESTION");
        const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(rec, "CONTEXTS");
        int answer = decision_index(g ? g : cJSON_GetObjectItemCaseSensitive(rec, "final_decision"));
        const char *why = !cJSON_IsObject(rec)       ? "not an object"
                          : !cJSON_IsString(q)       ? "QUESTION is not a string"
                          : !cJSON_IsArray(ctx)      ? "CONTEXTS is not an array"
                          : answer < 0 ? "final_decision is not \"yes\", \"no\" or \"maybe\""
                                       : NULL;
        int n_ctx = why ? 0 : cJSON_GetArraySize(ctx);
        for (const cJSON *c = why ? NULL : ctx->child; c; c = c->next)
            if (!cJSON_IsString(c)) why = "CONTEXTS holds a non-string";
        if (why) {
            note_skip(s, "%s: PMID %s: %s", path, rec->string, why);
            continue;
        }
        const char **parts = malloc((size_t)(n_ctx ? n_ctx : 1) * sizeof *parts);
        if (!parts) {
            rc = err_set("mcq: out of memory");
            goto done;
        }
        int k = 0;
        for (const cJSON *c = ctx->child; c; c = c->next) parts[k++] = c->valuestring;
        char *prompt = mcq_prompt_pubmedqa(q->valuestring, parts, (size_t)n_ctx);
        free(parts);
        if ((rc = set_push(s, strdup(rec->string), prompt, DECISIONS, 3, answer))) goto done;
        kept++;
    }
done:
    cJSON_Delete(root);
    cJSON_Delete(gold);
    free(text);
    free(gold_text);
    return rc;
}

// MedQA: "Question: q\nA. ..\nB. ..\nAnswer:" with the options in their letter order.
static const char *medqa_record(mcq_set *s, const cJSON *rec, const char *path,
                                unsigned long long line, int *failed) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(rec, "question");
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(rec, "options");
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(rec, "answer_idx");
    if (!cJSON_IsObject(rec)) return "not a JSON object";
    if (!cJSON_IsString(q)) return "\"question\" is not a string";
    if (!cJSON_IsObject(opts)) return "\"options\" is not an object";
    const char *texts[MCQ_MAX_CHOICES];
    int n = 0;
    for (const cJSON *o = opts->child; o; o = o->next, n++) {
        if (n == MCQ_MAX_CHOICES) return "more than 8 options";
        if (strcmp(o->string, LETTERS[n])) return "option keys are not A, B, C... in order";
        if (!cJSON_IsString(o)) return "an option is not a string";
        texts[n] = o->valuestring;
    }
    if (n < 2) return "fewer than 2 options";
    int gold = -1;
    for (int i = 0; i < n && cJSON_IsString(ans); i++)
        if (!strcmp(ans->valuestring, LETTERS[i])) gold = i;
    if (gold < 0) return "\"answer_idx\" is not the letter of an option";
    char *prompt = mcq_prompt_lettered("Question: ", q->valuestring, "\n", texts, n);
    if (set_push(s, location_id(path, line), prompt, LETTERS, n, gold)) *failed = 1;
    return NULL;
}

// MedMCQA: "Question: q\nChoices:\nA. opa\n...D. opd\nAnswer:"; cop is 1-based in the
// original files (the Hugging Face copy the harness reads has it 0-based).
static const char *medmcqa_record(mcq_set *s, const cJSON *rec, const char *path,
                                  unsigned long long line, int *failed) {
    static const char *const keys[4] = {"opa", "opb", "opc", "opd"};
    if (!cJSON_IsObject(rec)) return "not a JSON object";
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(rec, "question");
    const cJSON *cop = cJSON_GetObjectItemCaseSensitive(rec, "cop");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
    if (!cJSON_IsString(q)) return "\"question\" is not a string";
    const char *texts[4];
    for (int i = 0; i < 4; i++) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(rec, keys[i]);
        if (!cJSON_IsString(o)) return "an option (opa..opd) is missing or not a string";
        texts[i] = o->valuestring;
    }
    long long answer;
    if (!json_whole(cop, 1, 4, &answer)) return "\"cop\" is not an integer 1-4";
    char *prompt = mcq_prompt_lettered("Question: ", q->valuestring, "\nChoices:\n", texts, 4);
    char *item_id = cJSON_IsString(id) ? strdup(id->valuestring) : location_id(path, line);
    if (set_push(s, item_id, prompt, LETTERS, 4, (int)answer - 1)) *failed = 1;
    return NULL;
}

typedef const char *(*jsonl_record_fn)(mcq_set *, const cJSON *, const char *,
                                       unsigned long long, int *);

static int read_jsonl(mcq_set *s, const char *path, size_t limit, jsonl_record_fn record) {
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len)) return -1;
    size_t kept = 0, pos = 0;
    unsigned long long line = 0;
    int failed = 0;
    while (pos < len && (!limit || kept < limit) && !failed) {
        line++;
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl != NULL);
        if (py_lstrip_skip(start, n) == n) continue;  // blank line
        const char *at;
        cJSON *rec = json_parse_exact(start, n, &at);
        const char *why = rec ? record(s, rec, path, line, &failed) : "not valid JSON";
        cJSON_Delete(rec);
        if (why) note_skip(s, "%s:%llu: %s", path, line, why);
        else if (!failed) kept++;
    }
    free(text);
    return failed ? -1 : 0;
}

// "anatomy_test.csv" -> "anatomy", "clinical_knowledge_test.csv" -> "clinical knowledge".
static void mmlu_subject(const char *path, char *out, size_t n) {
    snprintf(out, n, "%s", base_name(path));
    static const char *const suffixes[] = {".csv", "_test", "_dev", "_val"};
    for (int i = 0; i < 4; i++) {
        size_t len = strlen(out), k = strlen(suffixes[i]);
        if (len > k && str_has_suffix(out, suffixes[i])) out[len - k] = '\0';
    }
    for (char *c = out; *c; c++)
        if (*c == '_') *c = ' ';
}

// "The following are multiple choice questions (with answers) about <subject>.\n\n"
// + question.strip() + "\nA. ..\nB. ..\nC. ..\nD. ..\nAnswer:".
static int read_mmlu_file(mcq_set *s, const char *path, size_t limit) {
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len)) return -1;
    char subject[512], head[700];
    mmlu_subject(path, subject, sizeof subject);
    snprintf(head, sizeof head,
             "The following are multiple choice questions (with answers) about %s.\n\n", subject);
    csv_reader r;
    csv_reader_init(&r, text, len);
    size_t kept = 0;
    int rc = 0, got;
    while ((!limit || kept < limit) && (got = csv_reader_next(&r)) == 1) {
        if (r.n_fields == 0) continue;  // blank line
        const char *a = r.n_fields == 6 ? r.fields[5] : "";
        int gold = strlen(a) == 1 && a[0] >= 'A' && a[0] <= 'D' ? a[0] - 'A' : -1;
        const char *why = r.n_fields != 6 ? "expected 6 fields (question, A, B, C, D, answer)"
                          : r.has_nul     ? "a field holds a NUL byte"
                          : gold < 0      ? "the answer is not A, B, C or D"
                                          : NULL;
        if (why) {
            note_skip(s, "%s:%llu: %s", path, (unsigned long long)r.line, why);
            continue;
        }
        const char *q = r.fields[0];
        size_t qlen = strlen(q), skip = py_lstrip_skip(q, qlen);
        size_t keep = py_rstrip_len(q + skip, qlen - skip);
        char *question = str_dup_n(q + skip, keep);
        if (!question) {
            rc = err_set("mcq: out of memory");
            break;
        }
        char *prompt = mcq_prompt_lettered(head, question, "\n",
                                           (const char *const *)r.fields + 1, 4);
        free(question);
        if ((rc = set_push(s, location_id(path, r.line), prompt, LETTERS, 4, gold))) break;
        kept++;
    }
    if (!rc && got < 0) rc = -1;
    csv_reader_free(&r);
    free(text);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int read_mmlu(mcq_set *s, const char *path, size_t limit) {
    if (!path_is_dir(path)) return read_mmlu_file(s, path, limit);
    DIR *d = opendir(path);
    if (!d) return err_set("%s: cannot open the directory", path);
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!str_has_suffix(e->d_name, ".csv")) continue;
        char **p = vec_grow(names, &cap, n + 1, sizeof *p);
        if (!p) {
            rc = err_set("mcq: out of memory");
            break;
        }
        names = p;
        if (!(names[n] = strdup(e->d_name))) {
            rc = err_set("mcq: out of memory");
            break;
        }
        n++;
    }
    closedir(d);
    if (!rc && n == 0) rc = err_set("%s: no .csv file in the directory", path);
    if (!rc) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !rc; i++) {
        char file[4400];
        if (!(rc = path_join(file, sizeof file, path, names[i])))
            rc = read_mmlu_file(s, file, limit);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int mcq_set_read(mcq_set *s, const char *path, mcq_format f, size_t limit,
                 const char *gold_path) {
    memset(s, 0, sizeof *s);
    if (gold_path && f != MCQ_PUBMEDQA)
        return err_set("%s: a gold answer file is for PubMedQA only", gold_path);
    int rc;
    switch (f) {
    case MCQ_PUBMEDQA: rc = read_pubmedqa(s, path, limit, gold_path); break;
    case MCQ_MEDQA: rc = read_jsonl(s, path, limit, medqa_record); break;
    case MCQ_MEDMCQA: rc = read_jsonl(s, path, limit, medmcqa_record); break;
    default: rc = read_mmlu(s, path, limit); break;
    }
    if (!rc && s->n == 0) {
        if (s->n_skipped)
            rc = err_set("%s: no valid %s record (%zu malformed; first: %s)", path,
                         mcq_format_name(f), s->n_skipped, s->first_skip);
        else
            rc = err_set("%s: no %s record (empty file?)", path, mcq_format_name(f));
    }
    if (rc) mcq_set_free(s);
    return rc;
}

int mcq_format_detect(const char *path, mcq_format *out) {
    if (path_is_dir(path) || str_has_suffix(path, ".csv")) {
        *out = MCQ_MMLU;
        return 0;
    }
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len)) return -1;
    size_t skip = py_lstrip_skip(text, len);
    const char *nl = memchr(text + skip, '\n', len - skip);
    size_t first = nl ? (size_t)(nl - text) : len;
    int found = 0;
    const char *at;
    cJSON *rec = json_parse_exact(text + skip, first - skip, &at);
    if (!cJSON_IsObject(rec)) {
        cJSON_Delete(rec);
        rec = json_parse_exact(text, len, &at);
    }
    if (cJSON_IsObject(rec)) {
        found = 1;
        if (cJSON_GetObjectItemCaseSensitive(rec, "opa")) *out = MCQ_MEDMCQA;
        else if (cJSON_GetObjectItemCaseSensitive(rec, "options")) *out = MCQ_MEDQA;
        else if (cJSON_IsObject(rec->child) &&
                 cJSON_GetObjectItemCaseSensitive(rec->child, "QUESTION"))
            *out = MCQ_PUBMEDQA;
        else found = 0;
    }
    cJSON_Delete(rec);
    free(text);
    if (!found)
        return err_set("%s: cannot tell which benchmark this file is; give --format "
                       "pubmedqa|medqa|medmcqa|mmlu", path);
    return 0;
}
