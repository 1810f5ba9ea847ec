// The `medtune train` configuration (docs/config.md): parsed from JSON with comments, overridden by
// --set, every key checked, defaults filled, and written back as the resolved config.json.
#ifndef MEDTUNE_TRAIN_TRAIN_CONFIG_H
#define MEDTUNE_TRAIN_TRAIN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "optim/adamw.h"
#include "optim/schedule.h"
#include "model/lora.h"

#define TRAIN_PATH_MAX 4096

typedef enum { DOC_ATTENTION_CAUSAL, DOC_ATTENTION_DOCUMENT } doc_attention_mode;
// What a step minimises (docs/training.md, "Objectives"): sft and cpt are the same masked
// next-token loss (on the tokens prep marked trained: answers of chat shards, all of text
// shards); dpo and orpo read preference-pair shards.
typedef enum { OBJECTIVE_SFT, OBJECTIVE_CPT, OBJECTIVE_DPO, OBJECTIVE_ORPO } objective_kind;
typedef enum { DPO_LOSS_SIGMOID, DPO_LOSS_IPO, DPO_LOSS_HINGE } dpo_loss_kind;

// One multiple-choice set scored at each evaluation (`eval_mcq`, docs/training.md). The
// format name is checked by the scorer (eval/, a layer above train/) when the run starts.
enum { TRAIN_MCQ_MAX = 8, TRAIN_MCQ_NAME_MAX = 48 };
typedef struct {
    char path[TRAIN_PATH_MAX];
    char format[16];               // "" = guessed from the file, as `medtune eval --mcq` does
    int64_t limit;                 // 0 = every item
    char name[TRAIN_MCQ_NAME_MAX]; // the metrics key part: given, or the file's stem
} train_mcq_set;

typedef struct {
    char model[TRAIN_PATH_MAX];
    base_dtype base_dtype;              // the type a Hugging Face base's matrices are held in
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
    int recompute;  // 1: activation recompute (lm_plan_init_recompute)
    train_mcq_set eval_mcq[TRAIN_MCQ_MAX];
    int n_eval_mcq;
    char best_metric[64];  // "" (none), "val_loss" or "mcq:<name>"
    int best_patience;     // evaluations without improvement before stopping; 0 = never stop
    objective_kind objective;
    double dpo_beta, dpo_label_smoothing, orpo_beta;
    dpo_loss_kind dpo_loss;
} train_config;

// The config keys, defined once: train_config.c parses, checks and writes the config from this
// table, `medtune train --help` prints it, and tests/test_train_config.c checks that
// docs/config.md lists exactly these keys, defaults and meanings.
typedef enum {
    TRAIN_KEY_PATH,     // char[TRAIN_PATH_MAX]; "" when absent, written as null
    TRAIN_KEY_INT,      // int
    TRAIN_KEY_INT64,    // int64_t
    TRAIN_KEY_UINT64,   // uint64_t
    TRAIN_KEY_FLOAT,    // float
    TRAIN_KEY_DOUBLE,   // double
    TRAIN_KEY_BOOL,     // int, 0 or 1
    TRAIN_KEY_CHOICE,   // an enum: the index of its name in `choices`
    TRAIN_KEY_TARGETS,  // uint32_t bit set of LoRA targets: a list of names or "all-linear"
    TRAIN_KEY_MCQ,      // train_mcq_set[TRAIN_MCQ_MAX] + n_eval_mcq: a list of objects
    TRAIN_KEY_METRIC,   // char[64]: "val_loss" or "mcq:<name of an eval_mcq entry>"
} train_key_type;

enum {
    TRAIN_KEY_RESUME_FREE = 1,   // may differ on --resume (run length, cadence, paths)
    TRAIN_KEY_ZERO_IS_NULL = 2,  // 0 means "not given" and is written as null (steps, epochs)
    TRAIN_KEY_MAX_OPEN = 4,      // the range excludes max: [min, max)
};

typedef struct {
    const char *key;  // dotted path: "optim.lr"
    train_key_type type;
    // The default as docs/config.md and --help show it: "required", "none" (absent: "" or 0),
    // or the value as a literal of the type ("2e-4", "true", "`cosine`") optionally followed
    // by a note in parentheses ("0 (all cores)"). A default that depends on other keys is
    // written as the rule ("2 r") and computed by `rule`.
    const char *def;
    const char *meaning;
    double min, max;               // accepted range of numbers (INT*, FLOAT, DOUBLE)
    const char *const *choices;    // CHOICE: the names, NULL-terminated
    double (*rule)(const train_config *tc);  // the default computed from earlier keys
    size_t offset;                 // of the value in train_config
    int flags;                     // TRAIN_KEY_*
} train_config_key;

// The table, in the order of the resolved config.json.
const train_config_key *train_config_keys(size_t *n);

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
// best.metric's direction: 1 when higher is better (an MCQ accuracy), 0 for val_loss. *mcq is
// the index of the eval_mcq entry it names, or -1.
int train_config_best_higher(const train_config *tc, int *mcq);

#endif
