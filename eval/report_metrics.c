#include "eval/report_metrics.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "common/fileio.h"

const char *const REPORT_FIELD_KEYS[REPORT_N_FIELDS] = {
    "loss", "lr", "grad_norm", "tokens", "tok_per_s", "elapsed_s", "val_loss", "val_ppl",
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
        if (*p == '\\' && !*++p) return NULL;
        if (out && k + 1 < n) out[k++] = *p;
    }
    if (out) out[k] = '\0';
    return p + 1;
}

// Skips a nested array or object (only unknown keys may hold one).
static const char *scan_nested(const char *p) {
    int depth = 0;
    for (;;) {
        if (!*p) return NULL;
        if (*p == '"') {
            if (!(p = scan_string(p, NULL, 0))) return NULL;
            continue;
        }
        if (*p == '{' || *p == '[') depth++;
        else if (*p == '}' || *p == ']') depth--;
        p++;
        if (depth == 0) return p;
    }
}

static int match_word(const char *p, const char *w) {
    size_t n = strlen(w);
    return !strncasecmp(p, w, n) && !isalnum((unsigned char)p[n]);
}

// A JSON number, or a non-finite value as Python's json (NaN, Infinity) or printf (nan, inf)
// writes it. Returns the position after it, or NULL.
static const char *scan_number(const char *p, double *out) {
    const char *s = p;
    int neg = *p == '-';
    if (*p == '-' || *p == '+') p++;
    if (match_word(p, "nan")) {
        *out = NAN;
        return p + 3;
    }
    if (match_word(p, "infinity") || match_word(p, "inf")) {
        *out = neg ? -INFINITY : INFINITY;
        return p + (match_word(p, "inf") ? 3 : 8);
    }
    if (!isdigit((unsigned char)*p)) return NULL;
    while (isdigit((unsigned char)*p) || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' ||
           *p == '-')
        p++;
    char buf[64];
    size_t n = (size_t)(p - s);
    if (n >= sizeof buf) return NULL;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    *out = strtod(buf, &end);
    return *end ? NULL : p;
}

static int field_of(const char *key) {
    for (int f = 0; f < REPORT_N_FIELDS; f++)
        if (!strcmp(key, REPORT_FIELD_KEYS[f])) return f;
    return -1;
}

// Parses one line into `r`; 0 when it is a valid metrics line.
static int parse_line(const char *p, report_row *r) {
    memset(r, 0, sizeof *r);
    int has_step = 0;
    p = skip_ws(p);
    if (*p++ != '{') return -1;
    p = skip_ws(p);
    if (*p == '}') return -1;
    for (;;) {
        char key[32];
        if (*p != '"' || !(p = scan_string(p, key, sizeof key))) return -1;
        p = skip_ws(p);
        if (*p++ != ':') return -1;
        p = skip_ws(p);
        int f = field_of(key);
        int is_step = !strcmp(key, "step");
        double v;
        const char *q;
        if ((q = scan_number(p, &v))) {
            if (is_step) {
                if (!(v >= 0 && v <= 1e15 && v == floor(v))) return -1;
                r->step = (int64_t)v;
                has_step = 1;
            } else if (f >= 0) {
                r->v[f] = v;
                r->present |= 1u << f;
            }
            p = q;
        } else if (match_word(p, "null")) {
            if (is_step) return -1;
            if (f >= 0) r->present &= ~(1u << f);
            p += 4;
        } else if (is_step || f >= 0) {
            return -1;
        } else if (*p == '"') {
            if (!(p = scan_string(p, NULL, 0))) return -1;
        } else if (*p == '{' || *p == '[') {
            if (!(p = scan_nested(p))) return -1;
        } else if (match_word(p, "true") || match_word(p, "false")) {
            p += *p == 't' || *p == 'T' ? 4 : 5;
        } else {
            return -1;
        }
        p = skip_ws(p);
        if (*p == '}') break;
        if (*p++ != ',') return -1;
        p = skip_ws(p);
    }
    p = skip_ws(p + 1);
    return *p || !has_step || !r->present ? -1 : 0;
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
            if (strlen(line) == (size_t)(end - line) && !parse_line(line, r)) {
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
