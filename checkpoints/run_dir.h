// Checkpoint directories of a run (docs/formats.md, docs/training.md):
//   OUT/checkpoints/step_00000200/state.h5 + adapter/   one complete checkpoint
//   OUT/checkpoints/latest                              name of the newest complete one
//   OUT/checkpoints/best                                name of the best one (best.metric)
// A checkpoint is written into step_N.tmp/, fsynced, renamed to step_N/ (or, when step_N/
// already exists, atomically exchanged with it), and only then is `latest` replaced
// (atomically) and older checkpoints pruned: at every instant `latest` names a complete
// checkpoint (docs/design.md, section 8).
#ifndef MEDTUNE_CHECKPOINTS_RUN_DIR_H
#define MEDTUNE_CHECKPOINTS_RUN_DIR_H

#include <stddef.h>

#include "checkpoints/state.h"

// is_best: `best` is replaced (atomically, after `latest`) to name this checkpoint. Pruning to
// keep_last never removes the checkpoint that `best` names.
int checkpoint_save(const char *out_dir, const train_state *s, const lora_adapter *a,
                    const adamw_state *opt, const char *base_model, int keep_last, int is_best);
// Directory of the newest complete checkpoint, from OUT/checkpoints/latest.
int checkpoint_latest(const char *out_dir, char *path, size_t n);
// Directory of the best checkpoint, from OUT/checkpoints/best (an error when the run has none).
int checkpoint_best(const char *out_dir, char *path, size_t n);
// Removes step_*.tmp directories left by interrupted writes.
int checkpoint_clean_partial(const char *out_dir);
// Writes the PEFT adapter to OUT/adapter, replacing an older one only once complete.
int run_write_final_adapter(const char *out_dir, const lora_adapter *a, const char *base_model);

#endif
