// `medtune eval MODEL [--adapter DIR] --preference SHARDS`: a model (+ adapter) on the
// preference pairs of a shard directory, with the DPO quantities of training (TRL's names):
// the mean summed response log-probability of the chosen and of the rejected response, and,
// with an adapter, the implicit rewards beta (logp - reference logp) against the reference =
// the model without the adapter: their means, margin and accuracy (chosen reward > rejected),
// and the sigmoid DPO loss at that beta.
#ifndef MEDTUNE_EVAL_PREFERENCE_H
#define MEDTUNE_EVAL_PREFERENCE_H

#include <stdint.h>

#include "model/lora.h"
#include "model/model.h"

typedef struct {
    const char *split;   // "val" or "train"
    int seq_len;         // rows of seq_len + 1 tokens, TRL's keep_start truncation
    int batch;           // pairs per forward pass
    int64_t max_pairs;   // 0 = all usable pairs; else this many evenly spaced
    double beta;         // DPO beta of the rewards
    int progress;        // report progress on stderr
} pref_eval_options;

typedef struct {
    int64_t pairs;        // pairs evaluated
    int64_t pairs_usable; // pairs of the split whose prompt leaves a response token
    int64_t pairs_total;  // pairs of the split
    double logps_chosen, logps_rejected;  // mean summed response log-probabilities
    int has_rewards;      // an adapter was given
    double rewards_chosen, rewards_rejected, margins, accuracy, loss;
} pref_eval_result;

// Refuses shards of another tokenizer than the model's (fingerprint) and document shards.
// lora may be NULL (log-probabilities only).
int preference_eval(const model *m, const lora_adapter *lora, const char *tokenizer_fingerprint,
                    const char *model_path, const char *shard_dir, const pref_eval_options *o,
                    pref_eval_result *r);

#endif
