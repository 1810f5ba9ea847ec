// The command line of every medtune command, declared as data: a command is a table of its
// positional arguments and options (name, kind, metavar, range, default, help, where the value
// goes), from which cli_parse fills the command's arguments struct and cli_print_help prints
// --help. Options and their help text cannot drift apart, and every command refuses bad usage
// the same way: one line "medtune <cmd>: <problem>", a hint to use --help, exit 2.
#ifndef MEDTUNE_TOOLS_OPTIONS_H
#define MEDTUNE_TOOLS_OPTIONS_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
    CLI_FLAG,     // int, set to 1 when given
    CLI_STRING,   // const char *, pointing into argv
    CLI_INT,      // long long, within [min, max] when min < max
    CLI_FLOAT,    // double, finite, within [min, max] (or (min, max] with min_open) when min < max
    CLI_STRINGS,  // cli_strings: every occurrence, in order (e.g. --set key=value ...)
    CLI_HELP,     // -h / --help, which every command has without declaring it
} cli_kind;

// The values of a repeated option. The strings point into argv; cli_strings_free frees the list.
typedef struct {
    char **items;
    size_t n, cap;
} cli_strings;

void cli_strings_free(cli_strings *s);

// No upper bound for CLI_INT / CLI_FLOAT ranges.
#define CLI_UNBOUNDED HUGE_VAL

typedef struct {
    const char *name;      // long name without the dashes ("max-new"); NULL ends a table
    char short_name;       // 'x' for -x, or 0
    cli_kind kind;
    const char *metavar;   // what the value is called in help ("N", "DIR")
    size_t offset;         // of the destination in the command's arguments struct
    const char *help;      // one paragraph, wrapped when printed
    // Shown as "(default: ...)". NULL: the destination's value before parsing (numbers, and
    // strings that are not NULL), nothing for flags.
    const char *default_text;
    double min, max;       // accepted range of CLI_INT / CLI_FLOAT values, when min < max
    int min_open;          // min itself is refused
    const char *choices;   // "peft|gguf": the only values accepted (CLI_STRING)
    const char *group;     // heading this option is listed under in help ("perplexity")
    int one_of;            // exactly one of the options marked one_of must be given
} cli_option;

typedef struct {
    const char *name;  // "MODEL"; NULL ends a table
    size_t offset;     // of the const char * destination in the arguments struct
    const char *help;
    int optional;
} cli_positional;

typedef struct {
    const char *name;         // "eval"
    const char *summary;      // its line in the `medtune` command listing
    // Printed after the usage line. Paragraphs are separated by blank lines and reflowed to
    // CLI_WIDTH, except those starting with a space, which are printed as written.
    const char *description;
    const cli_positional *positionals;  // NULL-terminated, or NULL
    const cli_option *options;          // NULL-terminated, at most 64; or NULL
    const char *epilog;  // printed after the options, like the description
    void (*print_more)(FILE *out);  // help generated elsewhere (train: the config keys)
    // A malformed or out-of-range option value is bad input (exit 1, "medtune: error: ...")
    // rather than a usage error (exit 2); `generate` documents it so.
    int bad_value_is_input;
    int (*run)(int argc, char **argv);
} cli_command;

// Parses argv[1..argc-1] (argv[0] is the command name) into `args`, whose fields the caller
// has set to their defaults. Returns 0 when the command should go on; otherwise the command
// is over and *exit_code says how: 0 after printing --help, 2 after a usage error (1 for a bad
// value with bad_value_is_input). `--opt value` and `--opt=value` are both accepted, and
// everything after `--` is positional.
int cli_parse(const cli_command *cmd, int argc, char **argv, void *args, int *exit_code);

// --help of `cmd`; `args` holds the defaults (the arguments struct before parsing).
void cli_print_help(FILE *out, const cli_command *cmd, const void *args);

// Prints `text` from column `col` (the cursor is already there) wrapped at CLI_WIDTH, with
// continuation lines indented to `col`.
#define CLI_WIDTH 79
void cli_print_wrapped(FILE *out, int col, const char *text);

// One row of a config key listing (`train --help`, `prep --help`): the key, its default and
// its meaning, in columns.
void cli_print_key(FILE *out, const char *key, const char *def, const char *meaning);

// Prints "medtune: error: <err_msg()>" to stderr and returns 1.
int cli_fail(void);
// Prints "medtune <cmd>: <message>" and a hint to use --help; returns 2.
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
