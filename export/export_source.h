// What `medtune export` reads: a LoRA adapter and the base model it belongs to, found from a
// checkpoint directory (state.h5), a run directory (its final adapter/, else its latest
// checkpoint) or a PEFT adapter directory.
#ifndef MEDTUNE_EXPORT_EXPORT_SOURCE_H
#define MEDTUNE_EXPORT_EXPORT_SOURCE_H

#include <stdint.h>

#include "model/lora.h"
#include "model/model.h"

typedef enum {
    EXPORT_SOURCE_CHECKPOINT,  // OUT/checkpoints/step_N (state.h5)
    EXPORT_SOURCE_ADAPTER,     // a PEFT adapter directory (also OUT/adapter of a finished run)
} export_source_kind;

typedef struct {
    export_source_kind kind;
    char path[4096];        // the checkpoint or adapter directory actually read
    char base_model[4096];  // the base model path (run config `model`, the adapter's
                            // base_model_name_or_path, or the caller's override)
    model_config mc;        // the base model's config (metadata only, no weights)
    lora_adapter a;
    int64_t step;         // checkpoints: optimizer steps done; -1 otherwise
    int64_t tokens_seen;  // checkpoints: input positions processed; -1 otherwise
} export_source;

// Resolves `path` and loads the adapter. `model` (may be NULL) overrides the base model.
int export_source_load(export_source *s, const char *path, const char *model);
void export_source_free(export_source *s);

// Writes the adapter of `s` as the PEFT adapter directory `out`, built in <out>.partial and
// published whole (common/fileio.h dir_publish). An existing `out` must be empty or a PEFT
// adapter directory, which is replaced.
int export_peft_write(const export_source *s, const char *out);

// The config of a Hugging Face model directory or .gguf file without reading its weights.
int base_model_config(const char *path, model_config *cfg);

// True when dir holds adapter_config.json / state.h5 / a run (config.json with
// checkpoints/latest or adapter/).
int dir_is_peft_adapter(const char *dir);
int dir_is_checkpoint(const char *dir);
int dir_is_run(const char *dir);

#endif
