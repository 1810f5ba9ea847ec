// The `medtune train` configuration (docs/config.md): parsed from JSON with comments, overridden by
// --set, every key checked, defaults filled, and written back as the resolved config.json.
#ifndef MEDTUNE_TRAIN_TRAIN_CONFIG_H
#define MEDTUNE_TRAIN_TRAIN_CONFIG_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "optim/adamw.h"
#include "optim/schedule.h"
#include "model/lora.h"

#define TRAIN_PATH_MAX 4096

typedef enum { DOC_ATTENTION_CAUSAL, DOC_ATTENTION_DOCUMENT } doc_attention_mode;

typedef struct {
    char model[TRAIN_PATH_MAX];
    char init_adapter[TRAIN_PATH_MAX];  // "" when training starts from PEFT init
    char data_train[TRAIN_PATH_MAX];
    char data_val[TRAIN_PATH_MAX];     // "" = the train shard directory's val split
    char data_replay[TRAIN_PATH_MAX];  // "" = no replay
    double replay_ratio;
    lora_config lora;
    adamw_config optim;
    float grad_clip;
    schedule_decay decay;
    int64_t warmup_steps;
    float min_lr_ratio;
    int micro_batch, seq_len, grad_accum;
    int64_t steps;  // > 0 when given; otherwise derived from epochs
    int epochs;
    int shuffle;
    uint64_t seed;
    int threads;  // 0 = all cores
    int64_t eval_every, eval_batches, save_every;
    int keep_last;
    char out_dir[TRAIN_PATH_MAX];
    doc_attention_mode doc_attention;
} train_config;

// Reads `path`, applies the n_sets "a.b=v" overrides, validates and fills defaults.
// Relative paths in the config are taken relative to the current directory.
int train_config_load(train_config *tc, const char *path, char **sets, int n_sets);
// The resolved config as JSON (every key, defaults included); caller frees with cJSON_Delete.
cJSON *train_config_to_json(const train_config *tc);
// Builds a train_config from a resolved-config JSON (as written into a run directory).
int train_config_from_json(train_config *tc, const cJSON *json, const char *name);
// Checks that `now` continues the run of `saved`: only the run length (steps / epochs),
// eval_every, save_every and keep_last may differ. Returns 0 when compatible, else -1 with the
// first differing key and both values in err_msg().
int train_config_compare_for_resume(const train_config *saved, const train_config *now);

#endif
