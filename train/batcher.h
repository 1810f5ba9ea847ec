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
    // Pair mode (batcher_init_pairs): the "windows" are the usable pairs of the train split.
    int pairs;
    uint64_t *pair_ids;  // [n_train] pair index of each usable pair
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

// Pair mode, for the DPO and ORPO objectives: the train split of `train` holds preference
// pairs, and the batcher deals its usable pairs (those whose prompt leaves room for a response
// token in seq_len + 1, as TRL's collator keeps them) in the same seeded per-epoch order and
// with the same cursor as windows. No replay.
int batcher_init_pairs(batcher *b, shard_set *train, int T, int shuffle, uint64_t seed,
                       int model_vocab);
// The usable pairs of `s` for windows of T + 1 tokens: *ids (malloc'd) and *n.
int batcher_usable_pairs(shard_set *s, int T, uint64_t **ids, int64_t *n);
// A micro-batch of `pairs` pairs is 2 * pairs rows of T: row j < pairs is prompt + chosen of
// the j-th pair, row pairs + j its prompt + rejected (TRL's concatenated batch), each cut to
// T + 1 tokens and padded with the pad id. targets[n] is the next token at every position
// whose next token is not padding (prompt included: ORPO's NLL term reads them), resp[n] is 1
// where that target is a response token (the log-probability DPO and ORPO compare).
// batcher_pair fills slot `slot` (rows slot and pairs + slot) with pair `i` of `s` (which must
// be usable); batcher_next_pairs fills the whole micro-batch from the cursor. Both return the
// number of targets in the chosen rows (ORPO's NLL count), or -1 on a read error.
int64_t batcher_pair(batcher *b, shard_set *s, uint64_t i, int slot, int pairs, int32_t *tokens,
                     int32_t *targets, int32_t *positions, int32_t *doc_ids, uint8_t *resp);
int64_t batcher_next_pairs(batcher *b, int pairs, int32_t *tokens, int32_t *targets,
                           int32_t *positions, int32_t *doc_ids, uint8_t *resp);

// The permutation of `n` windows for `epoch` (identity without shuffle).
void batcher_permutation(uint64_t *perm, int64_t n, uint64_t seed, uint64_t stream,
                         int64_t epoch, int shuffle);

#endif
