// The MCQ scorer that `medtune train` hands the trainer (train/trainer.h): eval/'s
// log-likelihood scoring of the config's eval_mcq sets, as `medtune eval --mcq FILE --format F
// --limit N` scores them with its default options (docs/training.md).
#ifndef MEDTUNE_TOOLS_TRAIN_MCQ_H
#define MEDTUNE_TOOLS_TRAIN_MCQ_H

#include "eval/mcq.h"
#include "tokenizer/tokenizer.h"
#include "train/trainer.h"

typedef struct {
    trainer_mcq_scorer scorer;  // points at this struct
    tokenizer *tok;
    mcq_set sets[TRAIN_MCQ_MAX];
    mcq_result *results;  // scratch, as long as the largest set
    int n;
} train_mcq;

// Reads every set of tc->eval_mcq and the model's tokenizer; a bad file fails here, before
// training starts; config_path names the config in messages.
int train_mcq_init(train_mcq *q, const train_config *tc, const char *config_path);
void train_mcq_free(train_mcq *q);

#endif
