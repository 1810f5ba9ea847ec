// Turns shard windows into training micro-batches: seeded per-epoch permutations of the train
// windows, deterministic interleaving of replay windows at a fixed ratio, and the fixed set of
// validation windows. Its cursor (data_cursor) is all a checkpoint needs to continue exactly.
#ifndef MEDTUNE_TRAIN_BATCHER_H
#define MEDTUNE_TRAIN_BATCHER_H

#include <stdint.h>

#include "checkpoints/data_cursor.h"
#include "data_prep/shard_reader.h"
#include "model/transformer.h"

typedef struct {
    int T;
    int model_vocab;  // the model's embedding rows: shard sets with a larger vocabulary are refused
    int document_attention;
    int shuffle;
    uint64_t seed;
    double replay_ratio;
    shard_set *train, *replay;  // replay may be NULL
    int64_t n_train, n_replay;  // windows of seq_len
    uint64_t *perm, *replay_perm;
    data_cursor cur;
    // one window of scratch
    uint32_t *w_tokens, *w_doc, *w_pos;
    uint8_t *w_mask;
} batcher;

// The shard sets stay owned by the caller and must outlive the batcher. Every set it reads
// (train, replay, and those given to batcher_window) must fit `model_vocab` ids.
int batcher_init(batcher *b, shard_set *train, shard_set *replay, double replay_ratio, int T,
                 int shuffle, uint64_t seed, int document_attention, int model_vocab);
void batcher_free(batcher *b);
// Restores a cursor (after batcher_init with the same data and settings).
int batcher_restore(batcher *b, const data_cursor *cur);

// Fills rows [0, rows) of a micro-batch (tokens/targets/positions/doc_ids each [rows * T])
// with the next windows. Returns the number of trained targets, or -1 on a read error.
int64_t batcher_next(batcher *b, int rows, int32_t *tokens, int32_t *targets,
                     int32_t *positions, int32_t *doc_ids);

// Fills row `row` with window `i` of `s` (no cursor involved: evaluation windows).
int64_t batcher_window(batcher *b, shard_set *s, uint64_t i, int row, int32_t *tokens,
                       int32_t *targets, int32_t *positions, int32_t *doc_ids);

// The permutation of `n` windows for `epoch` (identity without shuffle).
void batcher_permutation(uint64_t *perm, int64_t n, uint64_t seed, uint64_t stream,
                         int64_t epoch, int shuffle);

#endif
