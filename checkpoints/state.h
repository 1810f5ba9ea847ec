// Training state in HDF5 (checkpoints/step_N/state.h5): everything needed to continue a run
// bit-exactly. The first 512 bytes (HDF5's user block) hold the file's SHA-256
// (checkpoints/state_checksum.h). Layout (docs/formats.md):
//   /lora/<PEFT tensor name>     float32 [r, in] / [out, r]   LoRA A and B
//   /adam/m/<PEFT tensor name>   float32                      AdamW first moment
//   /adam/v/<PEFT tensor name>   float32                      AdamW second moment
//   /data/permutation            uint64 [n]   train-window order of the current epoch
//   /data/replay_permutation     uint64 [n]   replay-window order (empty without replay)
//   root attributes: format_version, medtune_version, step, tokens_seen, adam_step,
//   elapsed_s, the data cursor (epoch, index, replay_epoch, replay_index, sample), rng_seed,
//   dropout_counter, threads, config (resolved JSON), model_fingerprint, data_fingerprint,
//   best_step, best_score, evals_since_best (best.metric tracking; absent in older files).
#ifndef MEDTUNE_CHECKPOINTS_STATE_H
#define MEDTUNE_CHECKPOINTS_STATE_H

#include <stdint.h>

#include "optim/adamw.h"
#include "checkpoints/data_cursor.h"
#include "model/lora.h"

// The state format this medtune writes. 1: before medtune_version and threads existed, with
// a model_fingerprint over a sample of the fp32 weights. 2: medtune_version, threads, and a
// model_fingerprint over every stored weight byte. 3: format 2 behind a SHA-256 of the file
// in its HDF5 user block (checkpoints/state_checksum.h), checked before libhdf5 opens it.
// Files of a newer format are refused; format 1 is read (info, export) but not resumed
// (train_state_check_resume); formats 1 and 2 have no checksum and are read after a warning.
#define TRAIN_STATE_FORMAT_VERSION 3

typedef struct {
    int64_t format_version;     // as read; train_state_write always writes the current one
    int checksummed;            // as read: 1 = its SHA-256 was checked, 0 = it has none
    char medtune_version[32];   // as read ("" in format 1); written as MEDTUNE_VERSION
    int64_t threads;            // OpenMP threads of the session that wrote it (information)
    int64_t step;         // optimizer steps done
    int64_t tokens_seen;  // input positions processed
    double elapsed_s;     // training wall time so far
    data_cursor cursor;
    uint64_t rng_seed;         // the run's seed (shuffle, replay, dropout derive from it)
    uint64_t dropout_counter;  // micro-batches run so far (dropout masks derive from it)
    char *config_json;         // resolved config (owned)
    char model_fingerprint[65];
    char data_fingerprint[65];
    uint64_t *permutation;  // owned, n_permutation entries
    int64_t n_permutation;
    uint64_t *replay_permutation;
    int64_t n_replay_permutation;
    int64_t best_step;         // step of the best evaluation so far; 0 = none yet
    double best_score;         // its best.metric value (exact double)
    int64_t evals_since_best;  // evaluations since then without improvement (patience counter)
} train_state;

void train_state_free(train_state *s);

// Writes state.h5 at `path` and fsyncs it (callers make it visible atomically by renaming the
// directory that holds it).
int train_state_write(const char *path, const train_state *s, const lora_adapter *a,
                      const adamw_state *opt);
// Reads the scalar attributes, config and permutations only (to check compatibility first),
// after checking the file's checksum, when it has one, before libhdf5 sees the file.
int train_state_read_meta(const char *path, train_state *s);
// Prints one warning line on stderr when the state read from `path` had no checksum (written
// before format 3), so its integrity was not verified; the jobs that read a state call it.
void train_state_warn_unchecked(const train_state *s, const char *path);
// Refuses (-1, naming `ckpt` and the reason) a state that cannot be resumed by this medtune
// although it could be read: format 1, whose model fingerprint is no longer computed.
int train_state_check_resume(const train_state *s, const char *ckpt);
// Reads LoRA weights and AdamW moments into `a` and `opt` (already initialised with the
// shapes of the run), checking the checksum first as train_state_read_meta does; any
// missing, mis-shaped or unreadable dataset is an error naming it.
int train_state_read_tensors(const char *path, lora_adapter *a, adamw_state *opt);

#endif
