#include "data_prep/ingest.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

static const char *const FORMAT_NAMES[] = {
    [INPUT_PUBMED_XML] = "pubmed-xml", [INPUT_PMC_NXML] = "pmc-nxml",
    [INPUT_TEXT] = "text",             [INPUT_JSONL] = "jsonl",
    [INPUT_ALPACA] = "alpaca",         [INPUT_SHAREGPT] = "sharegpt",
    [INPUT_MESSAGES] = "messages",     [INPUT_PREFERENCE] = "preference",
};

int input_format_parse(const char *name, input_format *out) {
    for (size_t i = 0; i < sizeof FORMAT_NAMES / sizeof FORMAT_NAMES[0]; i++)
        if (!strcmp(name, FORMAT_NAMES[i])) {
            *out = (input_format)i;
            return 0;
        }
    return err_set("unknown input format '%s' (expected pubmed-xml, pmc-nxml, text, jsonl, "
                   "alpaca, sharegpt, messages or preference)", name);
}

const char *input_format_name(input_format f) { return FORMAT_NAMES[f]; }

int input_format_is_chat(input_format f) {
    return f == INPUT_ALPACA || f == INPUT_SHAREGPT || f == INPUT_MESSAGES || f == INPUT_PREFERENCE;
}

int ingest_malformed(ingest_ctx *ic, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ic->n_malformed++ == 0) snprintf(ic->first_malformed, sizeof ic->first_malformed, "%s", msg);
    if (ic->strict) return err_set("%s (strict: malformed records are errors)", msg);
    return 0;
}

int ingest_file(ingest_ctx *ic, const char *path, input_format fmt) {
    switch (fmt) {
    case INPUT_PUBMED_XML: return ingest_pubmed_xml(ic, path);
    case INPUT_PMC_NXML: return ingest_pmc_nxml(ic, path);
    case INPUT_TEXT: return ingest_text(ic, path);
    case INPUT_JSONL:
    case INPUT_ALPACA:
    case INPUT_SHAREGPT:
    case INPUT_MESSAGES:
    case INPUT_PREFERENCE: return ingest_json(ic, path, fmt);
    }
    return err_set("%s: unknown input format", path);
}
