// Held-out loss and perplexity of a model (+ adapter) over the windows of a shard directory
// written by `medtune prep`: the mean next-token NLL over every trained target of the
// windows (the same targets training would learn), and ppl = exp(mean NLL).
#ifndef MEDTUNE_EVAL_PERPLEXITY_H
#define MEDTUNE_EVAL_PERPLEXITY_H

#include <stdint.h>

#include "model/lora.h"
#include "model/model.h"

// Attention over the packed documents of a window. AUTO follows the shards' packing:
// documents packed whole (chat and instruction data) are scored with document attention, as
// each document alone; a stream of text (stream packing) causally across the window.
typedef enum { PPL_ATTENTION_AUTO, PPL_ATTENTION_CAUSAL, PPL_ATTENTION_DOCUMENT } ppl_attention;

typedef struct {
    const char *split;     // "val" or "train"
    int seq_len;           // window length T (windows hold T + 1 tokens)
    int batch;             // windows per forward pass
    int64_t max_windows;   // 0 = all; else this many evenly spaced windows
    int progress;          // report progress on stderr
    ppl_attention attention;
} ppl_options;

typedef struct {
    double nll_sum;          // summed NLL over the targets
    double loss, ppl;        // mean NLL per target, exp(loss)
    int64_t tokens;          // targets counted
    int64_t windows;         // windows evaluated
    int64_t windows_total;   // windows of seq_len in the split
    int document_attention;  // the attention used (AUTO resolved)
} ppl_result;

// Refuses shards made by a tokenizer whose fingerprint differs from `tokenizer_fingerprint`
// (the model's). lora may be NULL.
int perplexity_eval(const model *m, const lora_adapter *lora, const char *tokenizer_fingerprint,
                    const char *model_path, const char *shard_dir, const ppl_options *o,
                    ppl_result *r);

#endif
