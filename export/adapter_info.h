// `medtune info` on LoRA adapters and checkpoints (entries of the KINDS table in
// tools/cmd_info.c). Neither needs the base model: shapes come from the files themselves.
#ifndef MEDTUNE_EXPORT_ADAPTER_INFO_H
#define MEDTUNE_EXPORT_ADAPTER_INFO_H

// A PEFT adapter directory (adapter_config.json): r, alpha, scale, targets, tensors,
// parameter count, base model.
int adapter_dir_matches(const char *path);
int adapter_dir_print(const char *path, int json);

// A checkpoint directory (state.h5) or a run directory (its latest checkpoint): step, tokens
// seen, a summary of the run's config, and the adapter as above.
int checkpoint_dir_matches(const char *path);
int checkpoint_dir_print(const char *path, int json);

#endif
