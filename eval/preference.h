// `medtune eval MODEL [--adapter DIR [--ref-adapter DIR]] --preference SHARDS`: a model
// (+ adapter) on the preference pairs of a shard directory, with the DPO quantities of training
// (TRL's names): the mean summed response log-probability of the chosen and of the rejected
// response, and, with an adapter, the implicit rewards beta (logp - reference logp) against
// the reference = the model without the adapter, or with --ref-adapter the model with that
// adapter (a run from init_adapter: the SFT model): their means, margin and accuracy (chosen
// reward > rejected), and the sigmoid DPO loss at that beta.
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
    const char *ref_path; // the reference adapter's directory, for messages
} pref_eval_options;

typedef struct {
    int64_t pairs;        // pairs evaluated
    int64_t pairs_usable; // pairs of the split whose prompt leaves a response token
    int64_t pairs_total;  // pairs of the split
    double logps_chosen, logps_rejected;  // mean summed response log-probabilities
    double ref_logps_chosen, ref_logps_rejected;  // the same for the reference
    int64_t tokens_chosen;  // response tokens of the chosen rows
    double nll_chosen, ref_nll_chosen;  // -sum logp / tokens_chosen: the chosen answers' loss
    int has_rewards;      // an adapter was given
    double rewards_chosen, rewards_rejected, margins, accuracy, loss;
} pref_eval_result;

// Refuses shards of another tokenizer than the model's (fingerprint) and document shards.
// lora may be NULL (log-probabilities only); ref (NULL: the base alone) needs lora and must
// have its rank and targets (both run on one plan).
int preference_eval(const model *m, const lora_adapter *lora, const lora_adapter *ref,
                    const char *tokenizer_fingerprint, const char *model_path,
                    const char *shard_dir, const pref_eval_options *o, pref_eval_result *r);

#endif
