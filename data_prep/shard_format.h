// On-disk layout of a token shard (docs/formats.md, "Shards"). All integers little-endian.
//
//   frames      n_frames independent zstd frames; frame f holds tokens
//               [f*frame_tokens, min((f+1)*frame_tokens, n_tokens)) as uint32 words:
//               bits 0-29 token id, bit 30 document start, bit 31 trained (the loss of
//               predicting this token from the previous one counts)
//   frame index n_frames x {u64 offset, u32 compressed size, u32 CRC-32C of the compressed
//               frame followed by its decoded words (any flipped bit is caught, even one
//               zstd would decode to the same words)}
//   doc table   n_docs x u64: shard-relative index of each document start in this shard
//   footer      64 bytes, see below; read first, from the end of the file
//
// Shards of a split form one token stream in file order; a document may continue into the
// next shard (it then has no entry in that shard's doc table).
#ifndef MEDTUNE_DATA_PREP_SHARD_FORMAT_H
#define MEDTUNE_DATA_PREP_SHARD_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define SHARD_MAGIC "MTSHARD1"
#define SHARD_VERSION 1u
#define SHARD_FOOTER_SIZE 64
#define SHARD_INDEX_ENTRY_SIZE 16
#define SHARD_TOKEN_MASK 0x3FFFFFFFu
#define SHARD_DOC_START 0x40000000u
#define SHARD_TRAINED 0x80000000u
#define SHARD_MANIFEST "manifest.json"
#define SHARD_MANIFEST_VERSION 1
// Preference-pair directories (packing "pairs"): version 1 readers must refuse them.
#define SHARD_MANIFEST_VERSION_PAIRS 2
#define SHARD_DEFAULT_FRAME_TOKENS 16384u
// Readers refuse larger frames: each cached frame is a buffer of frame_tokens words, and a
// corrupt manifest must not make them allocate gigabytes.
#define SHARD_MAX_FRAME_TOKENS (1u << 24)

// Footer (64 bytes):
//   0  char[8] magic "MTSHARD1"      8  u32 version          12 u32 frame_tokens
//   16 u64 n_tokens                  24 u64 n_docs           32 u32 n_frames
//   36 u32 CRC-32C of frame index + doc table                40 u64 offset of the frame index
//   48 u64 number of trained tokens  56 u32 reserved (0)     60 u32 CRC-32C of bytes 0-59
typedef struct {
    uint32_t version, frame_tokens, n_frames, index_crc;
    uint64_t n_tokens, n_docs, index_offset, n_trained;
} shard_footer;

void shard_footer_encode(const shard_footer *f, uint8_t out[SHARD_FOOTER_SIZE]);
// Returns -1 (error naming `file`) if the magic, version or CRC is wrong.
int shard_footer_decode(shard_footer *f, const uint8_t in[SHARD_FOOTER_SIZE], const char *file);

uint32_t crc32c(uint32_t crc, const void *data, size_t len);

static inline void put_u32le(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_u64le(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t get_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get_u64le(const uint8_t *p) {
    return (uint64_t)get_u32le(p) | (uint64_t)get_u32le(p + 4) << 32;
}

#endif
