// Table-driven argv parsing and --help for the medtune commands (tools/options.h).
#include "tools/options.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/strbuf.h"

// Commands with more options than this show "[options]" in the usage line instead of each one.
#define USAGE_MAX_LISTED 6
// A space the wrapping does not break at, printed as a space: "(default: 2G" stays together.
#define NBSP '\x1f'
// Columns of a config key listing: key, default, meaning.
#define KEY_DEFAULT_COL 25
#define KEY_MEANING_COL 40
// Help text of an option starts at this column at the latest; longer labels get a line of
// their own.
#define HELP_COL_MAX 24

static const cli_option HELP_OPTION = {
    .name = "help", .short_name = 'h', .kind = CLI_HELP, .help = "show this help"};

int cli_fail(void) {
    fprintf(stderr, "medtune: error: %s\n", err_msg());
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "medtune %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'medtune %s --help'.\n", cmd);
    va_end(ap);
    return 2;
}

void cli_strings_free(cli_strings *s) {
    free(s->items);
    memset(s, 0, sizeof *s);
}

static int takes_value(const cli_option *o) { return o->kind != CLI_FLAG && o->kind != CLI_HELP; }

static void *field(void *args, size_t offset) { return (char *)args + offset; }

static const void *field_const(const void *args, size_t offset) {
    return (const char *)args + offset;
}

// "-" alone is a positional argument (stdin, by convention), as is anything after "--".
static int looks_like_option(const char *arg) { return arg[0] == '-' && arg[1]; }

// The option an argv token names, or NULL when unknown. A value given as --name=value goes to
// *value (NULL otherwise); *name_len is the length of the name part, for messages.
static const cli_option *option_lookup(const cli_command *cmd, const char *arg, const char **value,
                                       int *name_len) {
    *value = NULL;
    if (arg[1] != '-') {
        *name_len = (int)strlen(arg);
        if (arg[2]) return NULL;
        for (const cli_option *o = cmd->options; o && o->name; o++)
            if (o->short_name && o->short_name == arg[1]) return o;
        return arg[1] == HELP_OPTION.short_name ? &HELP_OPTION : NULL;
    }
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    *name_len = (int)(len + 2);
    if (eq) *value = eq + 1;
    for (const cli_option *o = cmd->options; o && o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len)) return o;
    return len == strlen(HELP_OPTION.name) && !strncmp(name, HELP_OPTION.name, len) ? &HELP_OPTION
                                                                                     : NULL;
}

// -h/--help anywhere an option may stand (not as the value of another option, not after --)
// wins over every usage error, so `medtune eval --bogus --help` still shows the help.
static int wants_help(const cli_command *cmd, int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        if (!looks_like_option(argv[i])) continue;
        const char *value;
        int len;
        const cli_option *o = option_lookup(cmd, argv[i], &value, &len);
        if (o && o->kind == CLI_HELP) return 1;
        if (o && takes_value(o) && !value) i++;
    }
    return 0;
}

// What a CLI_INT / CLI_FLOAT option accepts, for messages: "an integer in [1, 4096]".
static void describe_range(const cli_option *o, char *out, size_t n) {
    int is_int = o->kind == CLI_INT;
    const char *what = is_int ? "an integer" : "a number";
    if (!(o->min < o->max)) {
        snprintf(out, n, "%s", what);
        return;
    }
    char lo[32], hi[32];
    if (is_int) snprintf(lo, sizeof lo, "%lld", (long long)o->min);
    else snprintf(lo, sizeof lo, "%g", o->min);
    if (o->max == CLI_UNBOUNDED) {
        snprintf(out, n, "%s %s %s", what, o->min_open ? ">" : ">=", lo);
        return;
    }
    if (is_int) snprintf(hi, sizeof hi, "%lld", (long long)o->max);
    else snprintf(hi, sizeof hi, "%g", o->max);
    snprintf(out, n, "%s in %s%s, %s]", what, o->min_open ? "(" : "[", lo, hi);
}

static int bad_value(const cli_command *cmd, const cli_option *o, const char *expected,
                     const char *value) {
    if (!cmd->bad_value_is_input)
        return cli_usage_error(cmd->name, "--%s: expected %s, got '%s'", o->name, expected, value);
    err_set("--%s: expected %s, got '%s'", o->name, expected, value);
    return cli_fail();
}

static int in_range(const cli_option *o, double v) {
    if (!(o->min < o->max)) return 1;
    return (o->min_open ? v > o->min : v >= o->min) && v <= o->max;
}

// "peft|gguf" holds `value` as one of its |-separated words.
static int is_choice(const char *choices, const char *value) {
    size_t n = strlen(value);
    for (const char *c = choices; c; c = strchr(c, '|'), c = c ? c + 1 : NULL)
        if (!strncmp(c, value, n) && (c[n] == '|' || c[n] == '\0')) return 1;
    return 0;
}

// Stores one option value; returns 0 or the exit code of the error it reported.
static int store(const cli_command *cmd, const cli_option *o, const char *value, void *args) {
    void *dst = field(args, o->offset);
    char expected[96];
    char *end;
    switch (o->kind) {
    case CLI_STRING:
        if (o->choices && !is_choice(o->choices, value)) {
            snprintf(expected, sizeof expected, "one of %s", o->choices);
            return bad_value(cmd, o, expected, value);
        }
        *(const char **)dst = value;
        return 0;
    case CLI_STRINGS: {
        cli_strings *s = dst;
        char **items = vec_grow(s->items, &s->cap, s->n + 1, sizeof *items);
        if (!items) return cli_fail();
        s->items = items;
        s->items[s->n++] = (char *)value;
        return 0;
    }
    case CLI_INT: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end || !in_range(o, (double)v)) {
            describe_range(o, expected, sizeof expected);
            return bad_value(cmd, o, expected, value);
        }
        *(long long *)dst = v;
        return 0;
    }
    case CLI_FLOAT: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v) || !in_range(o, v)) {
            describe_range(o, expected, sizeof expected);
            return bad_value(cmd, o, expected, value);
        }
        *(double *)dst = v;
        return 0;
    }
    case CLI_FLAG:
        *(int *)dst = 1;
        return 0;
    case CLI_HELP:
        break;
    }
    return 0;
}

// "--a and --b", "--a, --b and --c": the options marked one_of.
static void one_of_names(const cli_command *cmd, char *out, size_t n) {
    size_t used = 0, total = 0, k = 0;
    for (const cli_option *o = cmd->options; o && o->name; o++) total += o->one_of != 0;
    out[0] = '\0';
    for (const cli_option *o = cmd->options; o && o->name && used < n; o++) {
        if (!o->one_of) continue;
        const char *join = k == 0 ? "" : k + 1 == total ? " and " : ", ";
        used += (size_t)snprintf(out + used, n - used, "%s--%s", join, o->name);
        k++;
    }
}

// Returns 0 or the exit code of the first error, which it reported.
static int parse_all(const cli_command *cmd, int argc, char **argv, void *args) {
    uint64_t given = 0;
    size_t n_pos = 0, n_pos_max = 0;
    while (cmd->positionals && cmd->positionals[n_pos_max].name) n_pos_max++;
    int positional_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!positional_only && !strcmp(arg, "--")) {
            positional_only = 1;
            continue;
        }
        if (positional_only || !looks_like_option(arg)) {
            if (n_pos == n_pos_max)
                return cli_usage_error(cmd->name, "unexpected argument '%s'", arg);
            *(const char **)field(args, cmd->positionals[n_pos++].offset) = arg;
            continue;
        }
        const char *value;
        int len;
        const cli_option *o = option_lookup(cmd, arg, &value, &len);
        if (!o) return cli_usage_error(cmd->name, "unknown option '%.*s'", len, arg);
        if (!takes_value(o)) {
            if (value) return cli_usage_error(cmd->name, "--%s takes no value", o->name);
            store(cmd, o, NULL, args);
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) return cli_usage_error(cmd->name, "--%s needs a value", o->name);
            value = argv[++i];
        }
        uint64_t bit = 1ull << (o - cmd->options);
        if (o->kind != CLI_STRINGS && (given & bit))
            return cli_usage_error(cmd->name, "--%s given twice", o->name);
        given |= bit;
        int rc = store(cmd, o, value, args);
        if (rc) return rc;
    }
    for (size_t k = n_pos; k < n_pos_max; k++)
        if (!cmd->positionals[k].optional)
            return cli_usage_error(cmd->name, "%s is required", cmd->positionals[k].name);
    int n_one_of = 0, n_given = 0;
    for (const cli_option *o = cmd->options; o && o->name; o++) {
        n_one_of += o->one_of != 0;
        n_given += o->one_of && (given & (1ull << (o - cmd->options)));
    }
    if (n_one_of && n_given != 1) {
        char names[256];
        one_of_names(cmd, names, sizeof names);
        return cli_usage_error(cmd->name, "give exactly one of %s", names);
    }
    return 0;
}

static void strings_free_all(const cli_command *cmd, void *args) {
    for (const cli_option *o = cmd->options; o && o->name; o++)
        if (o->kind == CLI_STRINGS) cli_strings_free(field(args, o->offset));
}

int cli_parse(const cli_command *cmd, int argc, char **argv, void *args, int *exit_code) {
    if (wants_help(cmd, argc, argv)) {
        cli_print_help(stdout, cmd, args);
        *exit_code = 0;
        return 1;
    }
    *exit_code = parse_all(cmd, argc, argv, args);
    if (*exit_code) strings_free_all(cmd, args);
    return *exit_code != 0;
}

// ---- help --------------------------------------------------------------------------------

void cli_print_wrapped(FILE *out, int col, const char *text) {
    int at = col;
    const char *p = text;
    while (*p) {
        if (*p == ' ') {
            p++;
            continue;
        }
        int len = (int)strcspn(p, " ");
        if (at > col && at + 1 + len > CLI_WIDTH) {
            fprintf(out, "\n%*s", col, "");
            at = col;
        }
        if (at > col) {
            fputc(' ', out);
            at++;
        }
        for (int i = 0; i < len; i++) fputc(p[i] == NBSP ? ' ' : p[i], out);
        at += len;
        p += len;
    }
    fputc('\n', out);
}

// Paragraphs are separated by blank lines. A paragraph whose first line starts with a space is
// printed as written (a table, an example); the others are reflowed to CLI_WIDTH.
static void print_text(FILE *out, const char *text) {
    strbuf para;
    strbuf_init(&para);
    for (const char *p = text; *p;) {
        const char *end = strstr(p, "\n\n");
        size_t len = end ? (size_t)(end - p) : strlen(p), shown = len;
        if (shown && p[shown - 1] == '\n') shown--;
        if (p[0] == ' ') {
            fprintf(out, "%.*s\n", (int)shown, p);
        } else {
            strbuf_clear(&para);
            strbuf_append(&para, p, shown);
            for (size_t i = 0; !strbuf_failed(&para) && i < para.len; i++)
                if (para.data[i] == '\n') para.data[i] = ' ';
            if (!strbuf_failed(&para)) cli_print_wrapped(out, 0, para.data);
        }
        p += len;
        if (*p) {
            fputc('\n', out);
            p += 2;
        }
    }
    strbuf_free(&para);
}

// "--name VALUE" (or "-x, --name VALUE").
static void option_label(const cli_option *o, char *out, size_t n) {
    int k = o->short_name ? snprintf(out, n, "-%c, --%s", o->short_name, o->name)
                          : snprintf(out, n, "--%s", o->name);
    if (takes_value(o) && k > 0 && (size_t)k < n)
        snprintf(out + k, n - (size_t)k, " %s", o->choices ? o->choices : o->metavar);
}

// The "(default: ...)" text of an option, "" when it shows none.
static void option_default(const cli_option *o, const void *args, char *out, size_t n) {
    out[0] = '\0';
    if (o->default_text) {
        snprintf(out, n, "%s", o->default_text);
        return;
    }
    const void *v = o->kind == CLI_HELP ? NULL : field_const(args, o->offset);
    if (o->kind == CLI_INT) snprintf(out, n, "%lld", *(const long long *)v);
    else if (o->kind == CLI_FLOAT) snprintf(out, n, "%g", *(const double *)v);
    else if (o->kind == CLI_STRING && *(const char *const *)v)
        snprintf(out, n, "%s", *(const char *const *)v);
}

static void print_item(FILE *out, int col, const char *label, const char *help, const char *def) {
    fprintf(out, "  %s", label);
    int at = 2 + (int)strlen(label);
    if (at + 2 > col) fprintf(out, "\n%*s", col, "");
    else fprintf(out, "%*s", col - at, "");
    char text[1024];
    snprintf(text, sizeof text, def[0] ? "%s (default:%c%s)" : "%s", help, NBSP, def);
    cli_print_wrapped(out, col, text);
}

static void print_option(FILE *out, int col, const cli_option *o, const void *args) {
    char label[128], def[256];
    option_label(o, label, sizeof label);
    option_default(o, args, def, sizeof def);
    print_item(out, col, label, o->help, def);
}

// The column where help texts start: after the longest label, but not beyond HELP_COL_MAX.
static int help_column(const cli_command *cmd) {
    char label[128];
    option_label(&HELP_OPTION, label, sizeof label);
    int widest = (int)strlen(label);
    for (const cli_option *o = cmd->options; o && o->name; o++) {
        option_label(o, label, sizeof label);
        if ((int)strlen(label) > widest) widest = (int)strlen(label);
    }
    for (const cli_positional *p = cmd->positionals; p && p->name; p++)
        if ((int)strlen(p->name) > widest) widest = (int)strlen(p->name);
    return widest + 4 < HELP_COL_MAX ? widest + 4 : HELP_COL_MAX;
}

// Appends one usage-line word, breaking the line before it would pass CLI_WIDTH.
static void usage_word(FILE *out, int *at, int indent, const char *word) {
    int len = (int)strlen(word);
    if (*at + 1 + len > CLI_WIDTH) {
        fprintf(out, "\n%*s", indent, "");
        *at = indent;
    } else {
        fputc(' ', out);
        (*at)++;
    }
    fputs(word, out);
    *at += len;
}

static void print_usage(FILE *out, const cli_command *cmd) {
    int at = fprintf(out, "usage: medtune %s", cmd->name), indent = at + 1;
    char word[256];
    for (const cli_positional *p = cmd->positionals; p && p->name; p++) {
        snprintf(word, sizeof word, p->optional ? "[%s]" : "%s", p->name);
        usage_word(out, &at, indent, word);
    }
    size_t n_listed = 0;
    int has_one_of = 0;
    for (const cli_option *o = cmd->options; o && o->name; o++) {
        n_listed += !o->one_of;
        has_one_of |= o->one_of;
    }
    if (has_one_of) {
        // One word per alternative, so a long choice wraps between alternatives.
        int first = 1;
        for (const cli_option *o = cmd->options; o && o->name; o++) {
            if (!o->one_of) continue;
            char label[128];
            option_label(o, label, sizeof label);
            int last = 1;
            for (const cli_option *q = o + 1; q->name; q++) last &= !q->one_of;
            snprintf(word, sizeof word, "%s%s%s", first ? "(" : "| ", label, last ? ")" : "");
            usage_word(out, &at, indent, word);
            first = 0;
        }
    }
    if (n_listed > USAGE_MAX_LISTED) {
        usage_word(out, &at, indent, "[options]");
    } else {
        for (const cli_option *o = cmd->options; o && o->name; o++) {
            if (o->one_of) continue;
            char label[128];
            option_label(o, label, sizeof label);
            snprintf(word, sizeof word, "[%s]%s", label, o->kind == CLI_STRINGS ? "..." : "");
            usage_word(out, &at, indent, word);
        }
    }
    fputc('\n', out);
}

void cli_print_help(FILE *out, const cli_command *cmd, const void *args) {
    print_usage(out, cmd);
    if (cmd->description) {
        fputc('\n', out);
        print_text(out, cmd->description);
    }
    int col = help_column(cmd);
    if (cmd->positionals && cmd->positionals[0].name) {
        fprintf(out, "\narguments:\n");
        for (const cli_positional *p = cmd->positionals; p->name; p++)
            print_item(out, col, p->name, p->help, "");
    }
    fprintf(out, "\noptions:\n");
    for (const cli_option *o = cmd->options; o && o->name; o++)
        if (!o->group) print_option(out, col, o, args);
    print_option(out, col, &HELP_OPTION, args);
    // Each group once, where its first option stands in the table.
    for (const cli_option *o = cmd->options; o && o->name; o++) {
        if (!o->group) continue;
        const cli_option *first = cmd->options;
        while (!first->group || strcmp(first->group, o->group)) first++;
        if (first != o) continue;
        fprintf(out, "\n%s:\n", o->group);
        for (const cli_option *g = o; g->name; g++)
            if (g->group && !strcmp(g->group, o->group)) print_option(out, col, g, args);
    }
    if (cmd->epilog) {
        fputc('\n', out);
        print_text(out, cmd->epilog);
    }
    if (cmd->print_more) {
        fputc('\n', out);
        cmd->print_more(out);
    }
}

void cli_print_key(FILE *out, const char *key, const char *def, const char *meaning) {
    int at = fprintf(out, "  %-*s %s", KEY_DEFAULT_COL - 3, key, def);
    if (at + 1 > KEY_MEANING_COL) fprintf(out, "\n%*s", KEY_MEANING_COL, "");
    else fprintf(out, "%*s", KEY_MEANING_COL - at, "");
    cli_print_wrapped(out, KEY_MEANING_COL, meaning);
}
