// `medtune quickstart`: the pieces tools/cmd_quickstart.c runs in order. This header is for the
// two quickstart files of the CLI only (tools/quickstart_setup.c finds the inputs and writes
// the run directory's data and configs).
#ifndef MEDTUNE_TOOLS_QUICKSTART_H
#define MEDTUNE_TOOLS_QUICKSTART_H

#include <stddef.h>

#define QS_PATH 4096

// The sample data in the source tree (configs/quickstart/).
#define QS_QA_FILE "medqa.jsonl"
#define QS_NOTES_FILE "clinical_notes.txt"
// The model tools/bootstrap.sh fetches into .cache/.
#define QS_MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

// Settings of the quickstart's instruction-tuning run; they differ between SmolLM2 (BPE,
// about 120 tokens per example) and the tiny fallback model (one token per byte).
typedef struct {
    int r;
    float alpha, lr;
    int seq_len, micro_batch, steps, warmup;
    int threads;  // 0 = all cores
    int max_new;  // tokens of each answer
} qs_train_settings;

typedef struct {
    int tiny;                  // the model is the tiny fallback written into OUT/model
    char model[QS_PATH];       // base model (file or HF directory)
    char model_name[64];       // "SmolLM2-135M-Instruct" or "tiny random model"
    char sample_dir[QS_PATH];  // where medqa.jsonl and clinical_notes.txt were found
    char out[QS_PATH];
    char data_qa[QS_PATH], data_notes[QS_PATH];
    char configs[QS_PATH];
    char prep_qa_config[QS_PATH], sft_config[QS_PATH];
    char prep_notes_config[QS_PATH], dapt_config[QS_PATH];
    char shards_qa[QS_PATH], shards_notes[QS_PATH];
    char run[QS_PATH], run_adapter[QS_PATH], dapt_run[QS_PATH];
    char export_peft[QS_PATH], export_gguf[QS_PATH], merged[QS_PATH];
    char answers[QS_PATH], summary[QS_PATH];
    char medtune[QS_PATH];  // how to call this executable in the printed commands
    qs_train_settings train;
} qs_plan;

// Directory of this executable, from /proc/self/exe.
int qs_exe_dir(char *dir, size_t n);

// Finds the sample data: next to the executable (build/../configs/quickstart), in the current
// directory, then in the source tree this binary was built from.
int qs_find_samples(char *dir, size_t n);

// Finds SmolLM2 in $MEDTUNE_CACHE when it is set (and only there: the user said where the
// cache is), else next to the executable (../.cache, .cache), in ./.cache and in the source
// tree's .cache. Returns 1 when found, 0 when not (the places looked at go to `looked`),
// never an error.
int qs_find_model(char *path, size_t n, char *looked, size_t looked_n);

// Fills every output path of `p` from p->out, and p->medtune.
int qs_plan_paths(qs_plan *p);

// Fails unless OUT is absent or an empty directory (a previous run is never overwritten).
int qs_check_out(const qs_plan *p);

// Creates OUT (checked as above) and copies the sample data into OUT/data.
int qs_prepare_out(const qs_plan *p);

// Writes the four commented configs into OUT/configs: prep + train for the instruction run the
// quickstart makes, prep + train for a domain-adaptation run on the clinical notes.
int qs_write_configs(const qs_plan *p);

#endif
