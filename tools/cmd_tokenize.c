// medtune tokenize: stdin lines -> token ids (or ids -> text with --decode), for scripts and
// for the parity tests against Hugging Face `tokenizers`.
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/json_number.h"
#include "tokenizer/tokenizer.h"
#include "tools/commands.h"

typedef struct {
    const char *model;
    int decode, json, no_special, json_input, count;
} tokenize_args;

static const cli_positional POSITIONALS[] = {
    {"MODEL", offsetof(tokenize_args, model),
     "a Hugging Face model directory, a tokenizer.json or a .gguf file", 0},
    {0},
};

static const cli_option OPTIONS[] = {
    {.name = "json", .kind = CLI_FLAG, .offset = offsetof(tokenize_args, json),
     .help = "print an object {\"ids\": [...], \"tokens\": [...]} per line (with --decode: "
             "{\"text\": ...})"},
    {.name = "no-special", .kind = CLI_FLAG, .offset = offsetof(tokenize_args, no_special),
     .help = "encode: do not add BOS/EOS; decode: leave special tokens out"},
    {.name = "json-input", .kind = CLI_FLAG, .offset = offsetof(tokenize_args, json_input),
     .help = "each input line is a JSON string (so texts can hold newlines)"},
    {.name = "decode", .kind = CLI_FLAG, .offset = offsetof(tokenize_args, decode),
     .help = "each input line is a JSON array of ids; prints the decoded text"},
    {.name = "count", .kind = CLI_FLAG, .offset = offsetof(tokenize_args, count),
     .help = "print only a summary {\"lines\", \"bytes\", \"tokens\", \"seconds\", "
             "\"mb_per_s\"}"},
    {0},
};

static void put_json_string(FILE *out, const char *s, size_t len) {
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
        } else if (c < 0x20) {
            switch (c) {
            case '\n': fputs("\\n", out); break;
            case '\t': fputs("\\t", out); break;
            case '\r': fputs("\\r", out); break;
            default: fprintf(out, "\\u%04x", c);
            }
        } else
            fputc(c, out);
    }
    fputc('"', out);
}

static void put_ids(FILE *out, const int32_t *ids, size_t n) {
    fputc('[', out);
    for (size_t i = 0; i < n; i++) fprintf(out, i ? ", %d" : "%d", ids[i]);
    fputc(']', out);
}

static int decode_line(const tokenizer *t, const char *line, size_t lineno, int json, int skip) {
    cJSON *arr = cJSON_Parse(line);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return err_set("stdin: line %zu: expected a JSON array of token ids", lineno);
    }
    int n = cJSON_GetArraySize(arr), rc = 0;
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    if (!ids) rc = err_set("stdin: line %zu: out of memory", lineno);
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) {
        if (rc) break;
        long long id;
        if (!json_whole(x, -2147483648.0, 2147483647.0, &id))
            rc = err_set("stdin: line %zu: element %d is not an integer id", lineno, i);
        else
            ids[i++] = (int32_t)id;
    }
    cJSON_Delete(arr);
    char *text = NULL;
    size_t len = 0;
    if (!rc && tokenizer_decode(t, ids, (size_t)n, skip, &text, &len)) rc = err_prefix("stdin: line %zu", lineno);
    free(ids);
    if (rc) return -1;
    if (json) {
        fputs("{\"text\": ", stdout);
        put_json_string(stdout, text, len);
        fputs("}\n", stdout);
    } else {
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
    }
    free(text);
    return 0;
}

static int run(int argc, char **argv) {
    tokenize_args a = {0};
    int code;
    if (cli_parse(&TOKENIZE_COMMAND, argc, argv, &a, &code)) return code;
    if (a.decode && (a.json_input || a.count))
        return cli_usage_error("tokenize",
                               "--decode cannot be combined with --json-input or --count");
    tokenizer *t = tokenizer_load(a.model);
    if (!t) return cli_fail();

    char *line = NULL;
    size_t cap = 0, lineno = 0, bytes = 0, tokens = 0;
    ssize_t got;
    id_vec ids = {0};
    double spent = 0;
    int rc = 0;
    while (!rc && (got = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        if (len && line[len - 1] == '\n') line[--len] = '\0';
        if (a.decode) {
            rc = decode_line(t, line, lineno, a.json, a.no_special);
            continue;
        }
        const char *text = line;
        cJSON *str = NULL;
        if (a.json_input) {
            str = cJSON_ParseWithLength(line, len);
            if (!cJSON_IsString(str)) {
                cJSON_Delete(str);
                rc = err_set("stdin: line %zu: expected a JSON string", lineno);
                break;
            }
            text = str->valuestring;
            len = strlen(text);
        }
        ids.len = 0;
        double t0 = clock_now_s();
        rc = tokenizer_encode(t, text, len, !a.no_special, &ids);
        spent += clock_now_s() - t0;
        cJSON_Delete(str);
        if (rc) break;
        bytes += len;
        tokens += ids.len;
        if (a.count) continue;
        if (a.json) {
            fputs("{\"ids\": ", stdout);
            put_ids(stdout, ids.data, ids.len);
            fputs(", \"tokens\": [", stdout);
            for (size_t i = 0; i < ids.len; i++) {
                const char *s = tokenizer_token_str(t, ids.data[i]);
                if (i) fputs(", ", stdout);
                put_json_string(stdout, s, strlen(s));
            }
            fputs("]}\n", stdout);
        } else {
            put_ids(stdout, ids.data, ids.len);
            fputc('\n', stdout);
        }
    }
    if (!rc && a.count)
        printf("{\"lines\": %zu, \"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.6f, \"mb_per_s\": %.3f}\n",
               lineno, bytes, tokens, spent, spent > 0 ? bytes / spent / 1e6 : 0.0);
    free(line);
    id_vec_free(&ids);
    tokenizer_free(t);
    if (fflush(stdout) != 0 && !rc) rc = err_set("stdout: write failed");
    return rc ? cli_fail() : 0;
}

const cli_command TOKENIZE_COMMAND = {
    .name = "tokenize",
    .summary = "stdin lines -> JSON arrays of token ids (or back with --decode)",
    .description =
        "Reads stdin line by line and prints one line per input line: by default a JSON\n"
        "array of token ids, BOS/EOS added as the tokenizer does. Invalid UTF-8 in the\n"
        "input is read as U+FFFD (see docs/tokenizer.md).\n",
    .positionals = POSITIONALS,
    .options = OPTIONS,
    .run = run,
};
