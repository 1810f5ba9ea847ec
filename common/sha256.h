// SHA-256 (FIPS 180-4), for fingerprints and checksums. Streaming: init, update..., final.
// OpenSSL's libcrypto does the hashing: it uses the CPU's SHA extensions (SHA-NI) where
// present, about 6 times the speed of a portable C implementation (docs/design.md, section 7),
// which matters for the model fingerprint, a hash of every weight byte of the base model.
#ifndef MEDTUNE_COMMON_SHA256_H
#define MEDTUNE_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/sha.h>

// The context lives on the caller's stack and owns nothing: no free, on any path.
typedef struct {
    SHA256_CTX s;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t digest[32]);
// One-shot digest as 64 lowercase hex characters + NUL.
void sha256_hex(const void *data, size_t len, char hex[65]);
void sha256_digest_to_hex(const uint8_t digest[32], char hex[65]);

#endif
