#include "train/batcher.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"

enum { STREAM_TRAIN = 1, STREAM_REPLAY = 2 };

void batcher_permutation(uint64_t *perm, int64_t n, uint64_t seed, uint64_t stream,
                         int64_t epoch, int shuffle) {
    for (int64_t i = 0; i < n; i++) perm[i] = (uint64_t)i;
    if (!shuffle) return;
    rng_state r;
    rng_init(&r, rng_hash64(seed, stream, (uint64_t)epoch));
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t j = rng_below(&r, (uint64_t)i + 1);
        uint64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

// The fields batcher_init and batcher_init_pairs share; the rest starts zeroed.
static void batcher_start(batcher *b, shard_set *train, int T, int shuffle, uint64_t seed,
                          int model_vocab) {
    memset(b, 0, sizeof *b);
    b->T = T;
    b->model_vocab = model_vocab;
    b->shuffle = shuffle;
    b->seed = seed;
    b->train = train;
}

int batcher_init(batcher *b, shard_set *train, shard_set *replay, double replay_ratio, int T,
                 int shuffle, uint64_t seed, int document_attention, int model_vocab) {
    batcher_start(b, train, T, shuffle, seed, model_vocab);
    b->document_attention = document_attention;
    b->replay = replay_ratio > 0.0 ? replay : NULL;
    b->replay_ratio = b->replay ? replay_ratio : 0.0;
    if (shard_set_check_model_vocab(train, model_vocab) ||
        (b->replay && shard_set_check_model_vocab(b->replay, model_vocab)))
        return -1;
    b->n_train = shard_set_n_windows(train, T);
    if (b->n_train < 0) return -1;
    if (b->n_train == 0)
        return err_set("%s: no window of seq_len %d + 1 tokens in the train split (%llu tokens)",
                       train->dir, T, (unsigned long long)shard_set_n_tokens(train));
    if (b->replay) {
        b->n_replay = shard_set_n_windows(b->replay, T);
        if (b->n_replay < 0) return -1;
        if (b->n_replay == 0)
            return err_set("%s: no window of seq_len %d + 1 tokens for replay", b->replay->dir, T);
    }
    b->perm = malloc((size_t)b->n_train * sizeof(uint64_t));
    b->replay_perm = malloc((size_t)(b->n_replay ? b->n_replay : 1) * sizeof(uint64_t));
    b->w_tokens = malloc((size_t)(T + 1) * sizeof(uint32_t));
    b->w_doc = malloc((size_t)T * sizeof(uint32_t));
    b->w_pos = malloc((size_t)T * sizeof(uint32_t));
    b->w_mask = malloc((size_t)T);
    if (!b->perm || !b->replay_perm || !b->w_tokens || !b->w_doc || !b->w_pos || !b->w_mask) {
        batcher_free(b);
        return err_set("batcher: out of memory for %lld windows", (long long)b->n_train);
    }
    data_cursor start = {0};
    return batcher_restore(b, &start);
}

void batcher_free(batcher *b) {
    free(b->pair_ids);
    free(b->perm);
    free(b->replay_perm);
    free(b->w_tokens);
    free(b->w_doc);
    free(b->w_pos);
    free(b->w_mask);
    memset(b, 0, sizeof *b);
}

int batcher_restore(batcher *b, const data_cursor *cur) {
    if (cur->index < 0 || cur->index > b->n_train || cur->replay_index < 0 ||
        cur->replay_index > b->n_replay || cur->epoch < 0 || cur->replay_epoch < 0)
        return err_set("data cursor (epoch %lld, window %lld) does not fit the %lld windows of "
                       "the train split",
                       (long long)cur->epoch, (long long)cur->index, (long long)b->n_train);
    b->cur = *cur;
    batcher_permutation(b->perm, b->n_train, b->seed, STREAM_TRAIN, cur->epoch, b->shuffle);
    if (b->replay)
        batcher_permutation(b->replay_perm, b->n_replay, b->seed, STREAM_REPLAY,
                            cur->replay_epoch, b->shuffle);
    return 0;
}

int64_t batcher_window(batcher *b, shard_set *s, uint64_t i, int row, int32_t *tokens,
                       int32_t *targets, int32_t *positions, int32_t *doc_ids) {
    const int T = b->T;
    if (shard_set_check_model_vocab(s, b->model_vocab) ||
        shard_set_window(s, T, i, b->w_tokens, b->w_mask, b->w_doc, b->w_pos))
        return -1;
    int64_t trained = 0;
    int64_t o = (int64_t)row * T;
    for (int t = 0; t < T; t++) {
        tokens[o + t] = (int32_t)b->w_tokens[t];
        int keep = b->w_mask[t] != 0;
        // With document attention a target in the next document is unreachable by design.
        if (b->document_attention && t + 1 < T && b->w_doc[t + 1] != b->w_doc[t]) keep = 0;
        targets[o + t] = keep ? (int32_t)b->w_tokens[t + 1] : -1;
        trained += keep;
        positions[o + t] = b->document_attention ? (int32_t)b->w_pos[t] : t;
        doc_ids[o + t] = b->document_attention ? (int32_t)b->w_doc[t] : 0;
    }
    return trained;
}

// floor((g+1) r) > floor(g r): sample g is a replay sample. Over any span of samples the
// replay share is the ratio to within one sample, with no randomness involved.
static int sample_is_replay(double ratio, int64_t g) {
    return ratio > 0.0 && floor((double)(g + 1) * ratio) > floor((double)g * ratio);
}

int64_t batcher_next(batcher *b, int rows, int32_t *tokens, int32_t *targets,
                     int32_t *positions, int32_t *doc_ids) {
    int64_t trained = 0;
    for (int row = 0; row < rows; row++) {
        int64_t got;
        if (sample_is_replay(b->replay_ratio, b->cur.sample)) {
            if (b->cur.replay_index == b->n_replay) {
                b->cur.replay_epoch++;
                b->cur.replay_index = 0;
                batcher_permutation(b->replay_perm, b->n_replay, b->seed, STREAM_REPLAY,
                                    b->cur.replay_epoch, b->shuffle);
            }
            got = batcher_window(b, b->replay, b->replay_perm[b->cur.replay_index++], row, tokens,
                                 targets, positions, doc_ids);
        } else {
            if (b->cur.index == b->n_train) {
                b->cur.epoch++;
                b->cur.index = 0;
                batcher_permutation(b->perm, b->n_train, b->seed, STREAM_TRAIN, b->cur.epoch,
                                    b->shuffle);
            }
            got = batcher_window(b, b->train, b->perm[b->cur.index++], row, tokens, targets,
                                 positions, doc_ids);
        }
        if (got < 0) return -1;
        trained += got;
        b->cur.sample++;
    }
    return trained;
}

int batcher_usable_pairs(shard_set *s, int T, uint64_t **ids, int64_t *n) {
    uint64_t total = shard_set_n_pairs(s), start[3], len[3];
    *n = 0;
    *ids = malloc((size_t)(total ? total : 1) * sizeof(uint64_t));
    if (!*ids) return err_set("%s: out of memory for %llu pairs", s->dir, (unsigned long long)total);
    for (uint64_t i = 0; i < total; i++) {
        if (shard_set_pair(s, i, start, len)) return -1;
        if (len[0] < (uint64_t)T + 1) (*ids)[(*n)++] = i;
    }
    return 0;
}

int batcher_init_pairs(batcher *b, shard_set *train, int T, int shuffle, uint64_t seed,
                       int model_vocab) {
    batcher_start(b, train, T, shuffle, seed, model_vocab);
    b->pairs = 1;
    if (shard_set_check_model_vocab(train, model_vocab)) return -1;
    if (batcher_usable_pairs(train, T, &b->pair_ids, &b->n_train)) return batcher_free(b), -1;
    if (b->n_train == 0) {
        batcher_free(b);
        return err_set("%s: no pair of the %s split has a prompt shorter than seq_len %d + 1 "
                       "tokens",
                       train->dir, train->split, T);
    }
    b->perm = malloc((size_t)b->n_train * sizeof(uint64_t));
    b->replay_perm = malloc(sizeof(uint64_t));
    b->w_tokens = malloc((size_t)2 * (T + 1) * sizeof(uint32_t));
    b->w_mask = malloc((size_t)2 * T);
    if (!b->perm || !b->replay_perm || !b->w_tokens || !b->w_mask) {
        batcher_free(b);
        return err_set("batcher: out of memory for %lld pairs", (long long)b->n_train);
    }
    data_cursor start = {0};
    return batcher_restore(b, &start);
}

int64_t batcher_pair(batcher *b, shard_set *s, uint64_t i, int slot, int pairs, int32_t *tokens,
                     int32_t *targets, int32_t *positions, int32_t *doc_ids, uint8_t *resp) {
    const int T = b->T;
    uint64_t start[3], len[3];
    if (shard_set_check_model_vocab(s, b->model_vocab) || shard_set_pair(s, i, start, len) ||
        shard_set_pair_rows(s, T, i, b->w_tokens, b->w_mask) != 0)
        return -1;
    int64_t chosen_targets = 0;
    for (int r = 0; r < 2; r++) {
        uint64_t filled = len[0] + len[1 + r];
        const uint32_t *w = b->w_tokens + (size_t)r * (T + 1);
        int64_t o = (int64_t)(r * pairs + slot) * T;
        for (int t = 0; t < T; t++) {
            int keep = (uint64_t)t + 1 < filled;
            tokens[o + t] = (int32_t)w[t];
            targets[o + t] = keep ? (int32_t)w[t + 1] : -1;
            resp[o + t] = b->w_mask[(size_t)r * T + t];
            positions[o + t] = t;
            doc_ids[o + t] = 0;
            if (r == 0) chosen_targets += keep;
        }
    }
    return chosen_targets;
}

int64_t batcher_next_pairs(batcher *b, int pairs, int32_t *tokens, int32_t *targets,
                           int32_t *positions, int32_t *doc_ids, uint8_t *resp) {
    int64_t chosen_targets = 0;
    for (int slot = 0; slot < pairs; slot++) {
        if (b->cur.index == b->n_train) {
            b->cur.epoch++;
            b->cur.index = 0;
            batcher_permutation(b->perm, b->n_train, b->seed, STREAM_TRAIN, b->cur.epoch, b->shuffle);
        }
        int64_t got = batcher_pair(b, b->train, b->pair_ids[b->perm[b->cur.index++]], slot, pairs,
                                   tokens, targets, positions, doc_ids, resp);
        if (got < 0) return -1;
        chosen_targets += got;
        b->cur.sample++;
    }
    return chosen_targets;
}
