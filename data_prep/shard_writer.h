// Writes one split ("train" or "val") as a sequence of shard files <split>-NNNNN.mtshard of
// `shard_tokens` tokens each (the last one shorter). Each file is written through a
// temporary file, fsynced and renamed when complete.
#ifndef MEDTUNE_DATA_PREP_SHARD_WRITER_H
#define MEDTUNE_DATA_PREP_SHARD_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char name[64];
    uint64_t n_tokens, n_docs, n_trained, bytes;
    char sha256[65];  // of the whole file
} shard_file_info;

typedef struct shard_writer shard_writer;

// shard_tokens is rounded up to a multiple of frame_tokens.
shard_writer *shard_writer_open(const char *dir, const char *split, uint64_t shard_tokens,
                                uint32_t frame_tokens);
// Appends one document. trained[i] says whether token i is a loss target; the writer
// clears it for the first token (nothing of the same document precedes it).
int shard_writer_add(shard_writer *w, const int32_t *ids, const uint8_t *trained, size_t n);
// Appends one preference pair as three consecutive documents (docs/formats.md, "Preference
// pairs"): the prompt (nothing trained), then the chosen and the rejected response with every
// token trained, their first included (it is predicted from the prompt's last token).
int shard_writer_add_pair(shard_writer *w, const int32_t *prompt, size_t n_prompt,
                          const int32_t *chosen, size_t n_chosen, const int32_t *rejected,
                          size_t n_rejected);
// Flushes the last shard. After this, the file list below is complete.
int shard_writer_finish(shard_writer *w);
size_t shard_writer_count(const shard_writer *w);
const shard_file_info *shard_writer_file(const shard_writer *w, size_t i);
uint64_t shard_writer_tokens(const shard_writer *w);
uint64_t shard_writer_docs(const shard_writer *w);
// Frees; an unfinished shard's temporary file is removed.
void shard_writer_free(shard_writer *w);

#endif
