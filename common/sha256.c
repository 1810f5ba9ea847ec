// OpenSSL 3 marks the SHA256_* functions deprecated in favour of EVP_Digest*, whose context
// is heap-allocated (EVP_MD_CTX_new) and must be freed on every path. These functions run the
// same SHA-NI code, keep sha256_ctx a plain stack value that cannot fail to initialise, and
// remain in every OpenSSL 3 release; the suppression is confined to this file.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "common/sha256.h"

void sha256_init(sha256_ctx *c) { SHA256_Init(&c->s); }

void sha256_update(sha256_ctx *c, const void *data, size_t len) {
    if (len) SHA256_Update(&c->s, data, len);  // data may be NULL when len is 0
}

void sha256_final(sha256_ctx *c, uint8_t digest[32]) { SHA256_Final(digest, &c->s); }

void sha256_digest_to_hex(const uint8_t digest[32], char hex[65]) {
    static const char H[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = H[digest[i] >> 4];
        hex[2 * i + 1] = H[digest[i] & 15];
    }
    hex[64] = '\0';
}

void sha256_hex(const void *data, size_t len, char hex[65]) {
    sha256_ctx c;
    uint8_t d[32];
    sha256_init(&c);
    sha256_update(&c, data, len);
    sha256_final(&c, d);
    sha256_digest_to_hex(d, hex);
}
