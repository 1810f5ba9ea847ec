// Random access to a shard directory for training and evaluation: window i of a split in
// O(1), decoding only the zstd frames it touches (a small LRU keeps recent frames), with
// every decoded frame checked against its CRC-32C.
//
// Windows have seq_len+1 tokens: input w[0:T], target w[1:T+1].
//   stream packing (text corpora): window i is tokens [i*T, i*T+T+1) of the split's token
//     stream; windows overlap by one token and the short tail is dropped.
//   whole packing (chat/instruction corpora): documents are packed whole, in order, into
//     windows (a document longer than T+1 tokens is truncated to T+1); the rest of a window
//     is padding (the EOS id), never trained.
// Per input position j < T the window reports:
//   mask[j]  1 when the target w[j+1] is trained (an answer token, a text token that is not
//            the first of its document), 0 for prompts, document starts and padding;
//   doc[j]   index of the document of w[j] within the window (0 for the first, padding
//            after the last document gets its own index);
//   pos[j]   position of w[j] within its document, counted from the start of the document
//            or of the window, whichever is later. With document attention, position j
//            attends to positions with the same doc[] only.
//   pairs packing (preference corpora): pair i is documents 3i (prompt, nothing trained),
//     3i+1 (chosen response) and 3i+2 (rejected response), every response token trained.
//     Windows are refused (shard_set_n_windows fails with one line naming the directory):
//     the DPO/ORPO objectives and eval --preference read pairs (train/batcher.h).
// A shard_set is not thread-safe (the frame cache); open one per thread.
#ifndef MEDTUNE_DATA_PREP_SHARD_READER_H
#define MEDTUNE_DATA_PREP_SHARD_READER_H

#include <stddef.h>
#include <stdint.h>

#include "common/fileio.h"

enum { SHARD_CACHE_FRAMES = 8 };

typedef struct {
    char path[4200];
    mapped_file map;
    uint64_t first_token, n_tokens;
    uint32_t n_frames;
    const uint8_t *index;  // frame index inside the mapping
} shard_set_file;

typedef struct {
    int file;
    uint32_t frame;
    uint64_t stamp;
    uint32_t *words;  // decoded frame, host order
    uint32_t n;
} shard_frame_slot;

typedef struct {
    char dir[4096], split[16];
    shard_set_file *files;
    int n_files;
    uint64_t n_tokens, n_docs, n_trained;
    uint32_t frame_tokens;
    int whole_packing;
    int pairs;  // packing "pairs": preference pairs, three documents each
    int vocab_size;
    int32_t pad_id;
    char tokenizer_fingerprint[65];
    char fingerprint[65];  // SHA-256 over the tokenizer fingerprint and the shard checksums

    uint64_t *doc_starts;  // global start of each document (whole packing)
    size_t cap_doc_starts;
    int pack_seq_len;      // packing computed for this seq_len (0: none yet)
    uint64_t *pack_first;  // first document of each window, n_windows+1 entries
    uint64_t n_pack_windows;

    void *dctx;  // ZSTD_DCtx
    shard_frame_slot cache[SHARD_CACHE_FRAMES];
    uint64_t clock;
} shard_set;

// Opens split "train" or "val" of a directory written by `medtune prep`. Checks the
// manifest, each shard's footer, index checksum and size against the manifest.
int shard_set_open(shard_set *s, const char *dir, const char *split);
void shard_set_close(shard_set *s);
// Refuses shards whose manifest vocabulary (tokenizer.vocab_size) is larger than the model's
// embedding rows. A smaller one is fine: models pad their embeddings (Qwen2.5's tokenizer has
// 151,665 ids, its embedding 151,936 rows). Every decoded frame is checked against the
// manifest's vocabulary, so together no id reaches the model outside its vocabulary.
int shard_set_check_model_vocab(const shard_set *s, int model_vocab);

uint64_t shard_set_n_tokens(const shard_set *s);
// Number of windows for seq_len, or -1 (error set) when out of memory.
int64_t shard_set_n_windows(shard_set *s, int seq_len);
// Fills window i: tokens[seq_len+1]; mask, doc, pos [seq_len] each (any may be NULL).
// A frame that fails its checksum or holds an id outside the manifest's vocabulary is an
// error naming the shard file.
int shard_set_window(shard_set *s, int seq_len, uint64_t i, uint32_t *tokens, uint8_t *mask,
                     uint32_t *doc, uint32_t *pos);
// Reads raw words (token | flags, see shard_format.h) [start, start+n) of the stream.
int shard_set_read(shard_set *s, uint64_t start, size_t n, uint32_t *words);
// Preference pairs (packing "pairs"; 0 for other directories).
uint64_t shard_set_n_pairs(const shard_set *s);
// Segment k of pair i (0 prompt, 1 chosen, 2 rejected) is stream words [start[k],
// start[k]+len[k]), read with shard_set_read.
int shard_set_pair(const shard_set *s, uint64_t i, uint64_t start[3], uint64_t len[3]);
// The two rows of pair i for windows of seq_len+1 tokens, as TRL's DataCollatorForPreference
// builds them with max_length = seq_len+1 and truncation_mode "keep_start": row 0 is prompt +
// chosen, row 1 prompt + rejected, each cut to its first seq_len+1 tokens and padded with the
// pad id (untrained). tokens[2*(seq_len+1)], mask[2*seq_len] (mask[j]: target j+1 trained; may
// be NULL). Returns 1 and fills nothing when the prompt alone has seq_len+1 tokens or more
// (no response token would be left: the pair is skipped, as TRL drops it), 0 ok, -1 error.
int shard_set_pair_rows(shard_set *s, int seq_len, uint64_t i, uint32_t *tokens, uint8_t *mask);
// Hex SHA-256 identifying tokenizer + data, for resume checks.
const char *shard_set_fingerprint(const shard_set *s);
const char *shard_set_tokenizer_fingerprint(const shard_set *s);

#endif
