// medtune tokenize: stdin lines -> token ids (or ids -> text with --decode), for scripts and
// for the parity tests against Hugging Face `tokenizers`.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "tokenizer/tokenizer.h"
#include "tools/commands.h"

static const char USAGE[] =
    "usage: medtune tokenize MODEL [--decode] [--json] [--no-special] [--json-input] [--count]\n"
    "\n"
    "MODEL is a Hugging Face model directory, a tokenizer.json or a .gguf file.\n"
    "Reads stdin line by line and prints one line per input line:\n"
    "  (default)      a JSON array of token ids, BOS/EOS added as the tokenizer does\n"
    "  --json         an object {\"ids\": [...], \"tokens\": [...]} (with --decode: {\"text\": ...})\n"
    "  --no-special   encode: do not add BOS/EOS; decode: leave special tokens out\n"
    "  --json-input   each input line is a JSON string (so texts can hold newlines)\n"
    "  --decode       each input line is a JSON array of ids; prints the decoded text\n"
    "  --count        print only a summary {\"lines\",\"bytes\",\"tokens\",\"seconds\",\"mb_per_s\"}\n"
    "Invalid UTF-8 in the input is read as U+FFFD (see docs/tokenizer.md).\n";

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

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
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
        if (!cJSON_IsNumber(x) || x->valuedouble != (double)(int32_t)x->valuedouble)
            rc = err_set("stdin: line %zu: element %d is not an integer id", lineno, i);
        else
            ids[i++] = (int32_t)x->valuedouble;
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

int cmd_tokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(USAGE, stdout);
        return 0;
    }
    const char *model = NULL;
    int decode = 0, json = 0, no_special = 0, json_input = 0, count = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--decode")) decode = 1;
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--no-special")) no_special = 1;
        else if (!strcmp(argv[i], "--json-input")) json_input = 1;
        else if (!strcmp(argv[i], "--count")) count = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("tokenize", "unknown option '%s'", argv[i]);
        else if (model) return cli_usage_error("tokenize", "more than one MODEL given");
        else model = argv[i];
    }
    if (!model) return cli_usage_error("tokenize", "MODEL is required");
    if (decode && (json_input || count))
        return cli_usage_error("tokenize", "--decode cannot be combined with --json-input or --count");
    tokenizer *t = tokenizer_load(model);
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
        if (decode) {
            rc = decode_line(t, line, lineno, json, no_special);
            continue;
        }
        const char *text = line;
        cJSON *str = NULL;
        if (json_input) {
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
        double t0 = now_s();
        rc = tokenizer_encode(t, text, len, !no_special, &ids);
        spent += now_s() - t0;
        cJSON_Delete(str);
        if (rc) break;
        bytes += len;
        tokens += ids.len;
        if (count) continue;
        if (json) {
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
    if (!rc && count)
        printf("{\"lines\": %zu, \"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.6f, \"mb_per_s\": %.3f}\n",
               lineno, bytes, tokens, spent, spent > 0 ? bytes / spent / 1e6 : 0.0);
    free(line);
    id_vec_free(&ids);
    tokenizer_free(t);
    if (fflush(stdout) != 0 && !rc) rc = err_set("stdout: write failed");
    return rc ? cli_fail() : 0;
}
