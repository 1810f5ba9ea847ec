#include "data_prep/shard_format.h"

#include <pthread.h>
#include <string.h>

#include "common/error.h"

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slicing by 4 bytes.
static uint32_t table[4][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 4; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len) {
    pthread_once(&table_once, table_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (len >= 4) {
        crc ^= get_u32le(p);
        crc = table[3][crc & 0xFF] ^ table[2][(crc >> 8) & 0xFF] ^ table[1][(crc >> 16) & 0xFF] ^
              table[0][crc >> 24];
        p += 4;
        len -= 4;
    }
    while (len--) crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xFF];
    return ~crc;
}

void shard_footer_encode(const shard_footer *f, uint8_t out[SHARD_FOOTER_SIZE]) {
    memset(out, 0, SHARD_FOOTER_SIZE);
    memcpy(out, SHARD_MAGIC, 8);
    put_u32le(out + 8, f->version);
    put_u32le(out + 12, f->frame_tokens);
    put_u64le(out + 16, f->n_tokens);
    put_u64le(out + 24, f->n_docs);
    put_u32le(out + 32, f->n_frames);
    put_u32le(out + 36, f->index_crc);
    put_u64le(out + 40, f->index_offset);
    put_u64le(out + 48, f->n_trained);
    put_u32le(out + 60, crc32c(0, out, 60));
}

int shard_footer_decode(shard_footer *f, const uint8_t in[SHARD_FOOTER_SIZE], const char *file) {
    if (memcmp(in, SHARD_MAGIC, 8)) return err_set("%s: not a medtune shard (bad magic)", file);
    if (get_u32le(in + 60) != crc32c(0, in, 60))
        return err_set("%s: shard footer checksum mismatch (corrupted shard)", file);
    f->version = get_u32le(in + 8);
    if (f->version != SHARD_VERSION)
        return err_set("%s: shard format version %u, this medtune reads %u", file, f->version, SHARD_VERSION);
    f->frame_tokens = get_u32le(in + 12);
    f->n_tokens = get_u64le(in + 16);
    f->n_docs = get_u64le(in + 24);
    f->n_frames = get_u32le(in + 32);
    f->index_crc = get_u32le(in + 36);
    f->index_offset = get_u64le(in + 40);
    f->n_trained = get_u64le(in + 48);
    return 0;
}
