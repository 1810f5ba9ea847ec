#include "checkpoints/state_checksum.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "common/sha256.h"

#define MAGIC "medtune state checksum\n"

// The HDF5 format signature: at offset 0 of a file without a user block.
static const unsigned char hdf5_signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

// The user block for a body of `size` bytes with digest `hex`, NUL-padded.
static void block_format(char block[STATE_CHECKSUM_BLOCK], const char *hex,
                         unsigned long long size) {
    memset(block, 0, STATE_CHECKSUM_BLOCK);
    snprintf(block, STATE_CHECKSUM_BLOCK, MAGIC "sha256 %s\nsize %llu\n", hex, size);
}

static void body_digest(const mapped_file *mf, char hex[65]) {
    sha256_hex(mf->data + STATE_CHECKSUM_BLOCK, mf->size - STATE_CHECKSUM_BLOCK, hex);
}

int state_checksum_write(const char *path) {
    mapped_file mf;
    if (mapped_file_open(&mf, path)) return -1;
    if (mf.size < STATE_CHECKSUM_BLOCK) {
        mapped_file_close(&mf);
        return err_set("%s: %zu bytes, shorter than its user block", path, mf.size);
    }
    char hex[65], block[STATE_CHECKSUM_BLOCK];
    body_digest(&mf, hex);
    block_format(block, hex, (unsigned long long)(mf.size - STATE_CHECKSUM_BLOCK));
    mapped_file_close(&mf);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int ok = fd >= 0 && pwrite(fd, block, sizeof block, 0) == (ssize_t)sizeof block &&
             fsync(fd) == 0;
    int e = errno;
    if (fd >= 0) close(fd);
    return ok ? 0 : err_set("%s: writing its checksum failed: %s", path, strerror(e));
}

static int verify_block(const char *path, const mapped_file *mf) {
    char hex[65] = "", block[STATE_CHECKSUM_BLOCK], text[STATE_CHECKSUM_BLOCK + 1];
    unsigned long long size = 0;
    // sscanf needs a terminated string: the mapping has none.
    memcpy(text, mf->data, STATE_CHECKSUM_BLOCK);
    text[STATE_CHECKSUM_BLOCK] = '\0';
    // The block is rebuilt from the two values it holds and compared byte for byte, so any
    // change to it (padding included) is caught, not only changes to the values.
    int parsed = sscanf(text, MAGIC "sha256 %64[0-9a-f]\nsize %llu", hex, &size) == 2;
    if (parsed) block_format(block, hex, size);
    if (!parsed || memcmp(block, text, sizeof block))
        return err_set("%s: its checksum block (the first %d bytes) is damaged: corrupt "
                       "checkpoint",
                       path, STATE_CHECKSUM_BLOCK);
    size_t body = mf->size - STATE_CHECKSUM_BLOCK;
    if (size != body)
        return err_set("%s: %zu bytes after its checksum block, %llu when it was written: "
                       "truncated or corrupt checkpoint",
                       path, body, size);
    char got[65];
    body_digest(mf, got);
    if (strcmp(got, hex))
        return err_set("%s: SHA-256 %s differs from %s recorded when it was written: corrupt "
                       "checkpoint",
                       path, got, hex);
    return 0;
}

int state_checksum_verify(const char *path, int *present) {
    *present = 0;
    mapped_file mf;
    if (mapped_file_open(&mf, path)) return -1;
    int rc = 0;
    if (mf.size >= sizeof hdf5_signature && !memcmp(mf.data, hdf5_signature, sizeof hdf5_signature))
        rc = 0;  // format 1 or 2: no checksum to check
    else if (mf.size >= strlen(MAGIC) && !memcmp(mf.data, MAGIC, strlen(MAGIC))) {
        *present = 1;
        rc = mf.size < STATE_CHECKSUM_BLOCK
                 ? err_set("%s: %zu bytes, shorter than its checksum block: truncated checkpoint",
                           path, mf.size)
                 : verify_block(path, &mf);
    } else
        rc = err_set("%s: neither a checksum block nor an HDF5 signature at its start: not a "
                     "medtune state file (incomplete or corrupt checkpoint)",
                     path);
    mapped_file_close(&mf);
    return rc;
}
