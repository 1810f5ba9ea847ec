#include "report/report_metrics.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"

const char *const REPORT_FIELD_KEYS[REPORT_N_FIELDS] = {
    "loss", "lr", "grad_norm", "tokens", "tok_per_s", "elapsed_s", "val_loss", "val_ppl",
    "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
    "logps/chosen", "logps/rejected", "val_rewards/margins", "val_rewards/accuracies",
};

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\r') p++;
    return p;
}

// Scans a JSON string starting at the quote; copies up to n-1 bytes of its raw content to
// `out` (when given). Returns the position after the closing quote, or NULL.
static const char *scan_string(const char *p, char *out, size_t n) {
    size_t k = 0;
    for (p++; *p != '"'; p++) {
        if (!*p || (unsigned char)*p < 0x20) return NULL;
        char c = *p;
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i])) return NULL;
                // Only ASCII matters (keys are compared with ASCII names); NUL stays visible.
                unsigned long u = strtoul((char[5]){p[1], p[2], p[3], p[4], 0}, NULL, 16);
                c = u > 0 && u < 0x80 ? (char)u : '?';
                p += 4;
            } else if (*p && strchr("\"\\/", *p)) {
                c = *p;
            } else if (*p && strchr("bfnrt", *p)) {
                c = '?';
            } else {
                return NULL;
            }
        }
        if (out && k + 1 < n) out[k++] = c;
    }
    if (out) out[k] = '\0';
    return p + 1;
}

// JSON's literals are lowercase.
static int match_literal(const char *p, const char *w) {
    size_t n = strlen(w);
    return !strncmp(p, w, n) && !isalnum((unsigned char)p[n]);
}

// A JSON number, or a non-finite value as Python's json (NaN, Infinity, -Infinity) or
// printf (nan, -nan, inf, -inf) writes it. Returns the position after it, or NULL.
static const char *scan_number(const char *p, double *out) {
    const char *s = p;
    int neg = *p == '-';
    p += neg;
    if (match_literal(p, "NaN") || match_literal(p, "nan")) {
        *out = NAN;
        return p + 3;
    }
    if (match_literal(p, "Infinity") || match_literal(p, "inf")) {
        *out = neg ? -INFINITY : INFINITY;
        return p + (*p == 'I' ? 8 : 3);
    }
    // JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    if (*p == '0') p++;
    else if (isdigit((unsigned char)*p)) while (isdigit((unsigned char)*p)) p++;
    else return NULL;
    if (*p == '.') {
        if (!isdigit((unsigned char)*++p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    char buf[512];
    size_t n = (size_t)(p - s);
    if (n >= sizeof buf) return NULL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *out = strtod(buf, NULL);
    return p;
}

#define REPORT_MAX_DEPTH 64

// Skips any JSON value (what unknown keys may hold), checking its syntax.
static const char *scan_value(const char *p, int depth) {
    double v;
    p = skip_ws(p);
    if (*p == '"') return scan_string(p, NULL, 0);
    if (*p == '{' || *p == '[') {
        const char close = *p == '{' ? '}' : ']';
        if (depth >= REPORT_MAX_DEPTH) return NULL;
        p = skip_ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                if (*p != '"' || !(p = scan_string(p, NULL, 0))) return NULL;
                p = skip_ws(p);
                if (*p++ != ':') return NULL;
            }
            if (!(p = scan_value(p, depth + 1))) return NULL;
            p = skip_ws(p);
            if (*p == close) return p + 1;
            if (*p++ != ',') return NULL;
            p = skip_ws(p);
        }
    }
    if (match_literal(p, "true") || match_literal(p, "null")) return p + 4;
    if (match_literal(p, "false")) return p + 5;
    return scan_number(p, &v);
}

static int field_of(const char *key) {
    for (int f = 0; f < REPORT_N_FIELDS; f++)
        if (!strcmp(key, REPORT_FIELD_KEYS[f])) return f;
    return -1;
}

// The bit of "mcq/<name>/acc" (2 i) or "mcq/<name>/acc_norm" (2 i + 1) in mcq_present, adding
// <name> to m's sets when it is new and there is room; -1 for any other key.
static int mcq_bit_of(report_metrics *m, const char *key) {
    if (strncmp(key, "mcq/", 4)) return -1;
    const char *name = key + 4, *slash = strrchr(name, '/');
    if (!slash || slash == name || (size_t)(slash - name) >= REPORT_MCQ_NAME_MAX) return -1;
    int norm = !strcmp(slash + 1, "acc_norm");
    if (!norm && strcmp(slash + 1, "acc")) return -1;
    int len = (int)(slash - name);
    for (int i = 0; i < m->n_mcq; i++)
        if (!strncmp(m->mcq_names[i], name, (size_t)len) && !m->mcq_names[i][len])
            return 2 * i + norm;
    if (m->n_mcq == REPORT_MAX_MCQ) return -1;
    snprintf(m->mcq_names[m->n_mcq], REPORT_MCQ_NAME_MAX, "%.*s", len, name);
    return 2 * m->n_mcq++ + norm;
}

// Parses one line into `r`; 0 when it is a valid metrics line. As in JSON parsers, a key
// given twice takes its last value, so a bad value only counts if no later one replaces it.
static int parse_line(const char *p, report_row *r, report_metrics *m) {
    memset(r, 0, sizeof *r);
    int has_step = 0;
    uint32_t bad = 0;  // fields whose (last) value is not a number or null
    p = skip_ws(p);
    if (*p++ != '{') return -1;
    p = skip_ws(p);
    if (*p == '}') return -1;
    for (;;) {
        char key[80];
        if (*p != '"' || !(p = scan_string(p, key, sizeof key))) return -1;
        p = skip_ws(p);
        if (*p++ != ':') return -1;
        p = skip_ws(p);
        const int f = field_of(key), is_step = !strcmp(key, "step");
        const int mcq = f < 0 && !is_step ? mcq_bit_of(m, key) : -1;
        double v;
        const char *q = is_step || f >= 0 || mcq >= 0 ? scan_number(p, &v) : NULL;
        if (mcq >= 0) {
            // Accuracies are optional extras: a non-number is left out, not a bad line.
            r->mcq_present &= ~(1u << mcq);
            if (q) {
                r->mcq[mcq / 2][mcq % 2] = v;
                r->mcq_present |= 1u << mcq;
            }
        } else if (is_step) {
            has_step = q && v >= 0 && v <= 1e15 && v == floor(v);
            if (has_step) r->step = (int64_t)v;
        } else if (f >= 0) {
            const uint32_t bit = 1u << f;
            r->present &= ~bit;
            bad &= ~bit;
            if (q) {
                r->v[f] = v;
                r->present |= bit;
            } else if (!match_literal(p, "null")) {
                bad |= bit;
            }
        }
        if (!q && !(q = scan_value(p, 0))) return -1;
        p = skip_ws(q);
        if (*p == '}') break;
        if (*p++ != ',') return -1;
        p = skip_ws(p);
    }
    p = skip_ws(p + 1);
    return *p || !has_step || bad || !(r->present || r->mcq_present) ? -1 : 0;
}

static int row_cmp(const void *a, const void *b) {
    const report_row *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

int report_metrics_read(report_metrics *m, const char *path) {
    memset(m, 0, sizeof *m);
    if (!path_exists(path)) return err_set("%s: not found (no training step has been logged)", path);
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len)) return -1;
    size_t cap = 1;
    for (size_t i = 0; i < len; i++) cap += text[i] == '\n';
    m->rows = xmalloc_or_err(cap * sizeof *m->rows, path);
    if (!m->rows) {
        free(text);
        return -1;
    }
    size_t line_no = 0;
    for (char *line = text; line < text + len;) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        char *end = nl ? nl : text + len;
        *end = '\0';
        line_no++;
        // A NUL inside the line (binary garbage) ends it early: parse_line then sees a
        // truncated object and counts the line as malformed.
        if (*skip_ws(line)) {
            m->n_lines++;
            report_row *r = &m->rows[m->n_rows];
            if (strlen(line) == (size_t)(end - line) && !parse_line(line, r, m)) {
                r->line = line_no;
                m->n_rows++;
            } else {
                if (m->n_malformed < REPORT_MAX_NOTED) m->malformed_lines[m->n_malformed] = line_no;
                m->n_malformed++;
                m->last_line_torn = !nl;
            }
        }
        line = end + 1;
    }
    free(text);
    if (m->n_lines == 0) {
        report_metrics_free(m);
        return err_set("%s: empty (no training step has been logged)", path);
    }
    if (m->n_rows == 0) {
        size_t first = m->malformed_lines[0];
        report_metrics_free(m);
        return err_set("%s: no valid metrics line (line %zu is not a JSON object with \"step\")",
                       path, first);
    }
    qsort(m->rows, m->n_rows, sizeof *m->rows, row_cmp);
    size_t k = 0;
    for (size_t i = 0; i < m->n_rows; i++) {
        if (k > 0 && m->rows[k - 1].step == m->rows[i].step) {
            m->rows[k - 1] = m->rows[i];
            m->n_replaced++;
        } else {
            m->rows[k++] = m->rows[i];
        }
    }
    m->n_rows = k;
    return 0;
}

void report_metrics_free(report_metrics *m) {
    free(m->rows);
    memset(m, 0, sizeof *m);
}
