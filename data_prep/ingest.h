// Ingest readers: each streams the documents of one input file to a callback, skipping
// (and counting) malformed records, or failing on the first one under `strict`.
#ifndef MEDTUNE_DATA_PREP_INGEST_H
#define MEDTUNE_DATA_PREP_INGEST_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "data_prep/document.h"

typedef enum {
    INPUT_PUBMED_XML,
    INPUT_PMC_NXML,
    INPUT_TEXT,
    INPUT_JSONL,
    INPUT_ALPACA,
    INPUT_SHAREGPT,
    INPUT_MESSAGES,
    INPUT_PREFERENCE,
} input_format;

// Parses "pubmed-xml", "pmc-nxml", "text", "jsonl", "alpaca", "sharegpt", "messages",
// "preference".
int input_format_parse(const char *name, input_format *out);
const char *input_format_name(input_format f);
int input_format_is_chat(input_format f);

typedef struct {
    // Receives each document; the document is only valid during the call.
    // A non-zero return stops the reader and is passed on (with err_msg() set).
    int (*emit)(void *user, const document *doc);
    void *user;
    int strict;
    // jsonl: field holding the text (default "text"); alpaca: field holding the response
    // (default "output"); sharegpt/messages: field holding the turns.
    const char *text_field;

    uint64_t n_records;    // records seen, malformed and empty ones included
    uint64_t n_malformed;  // bad JSON, broken XML, wrong field types, ...
    uint64_t n_empty;      // well-formed records without text (PubMed without abstract, ...)
    char first_malformed[512];
    uint64_t bytes_in;     // input bytes consumed (uncompressed), for progress
} ingest_ctx;

// Reads one file (plain or .gz) in the given format.
int ingest_file(ingest_ctx *ic, const char *path, input_format fmt);

// Counts a malformed record. `fmt` starts with the location ("file:line: ..."). Returns -1
// with the message as error under strict, 0 otherwise (the reader then skips the record).
int ingest_malformed(ingest_ctx *ic, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Per-format readers (dispatched by ingest_file).
int ingest_pubmed_xml(ingest_ctx *ic, const char *path);
int ingest_pmc_nxml(ingest_ctx *ic, const char *path);
int ingest_text(ingest_ctx *ic, const char *path);
int ingest_json(ingest_ctx *ic, const char *path, input_format fmt);

// Chat roles by name: ShareGPT's `from` (human/user, gpt/assistant/chatgpt/bard/bing/model,
// system; any case) and OpenAI's `role` (system/developer, user, assistant). -1 if unknown.
int role_from_sharegpt(const char *from, chat_role *role);
int role_from_openai(const char *name, chat_role *role);

// preference: fills `d` (is_chat, is_pair) from one parsed JSON record (ingest_preference.c).
// Returns 0 ok, 1 malformed (reason in `why`), 2 empty, -1 out of memory.
int preference_record(const cJSON *rec, document *d, char *why, size_t n);

#endif
