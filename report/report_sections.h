// The tables of the run report that come from files other than metrics.jsonl
// (report.c assembles the page).
#ifndef MEDTUNE_REPORT_REPORT_SECTIONS_H
#define MEDTUNE_REPORT_REPORT_SECTIONS_H

#include <cjson/cJSON.h>

#include "common/strbuf.h"

// The resolved config as a table of dotted keys; `config` NULL shows `why` instead.
void report_config_section(strbuf *b, const cJSON *config, const char *why);
// One column per shard directory named by the config (data.train, data.val, data.replay),
// from its manifest.json; a missing or unreadable manifest is noted in its column.
void report_data_section(strbuf *b, const cJSON *config);
// OUT/checkpoints/step_* (complete or not), `latest`, and the final OUT/adapter.
void report_checkpoints_section(strbuf *b, const char *run_dir);

#endif
