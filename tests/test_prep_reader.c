// test_prep_reader DIR SPLIT SEQ_LEN [--order]: prints every window of a shard split as one
// JSON line [tokens, mask, doc, pos] for the Python side to compare with its own reading of
// the format; a reader error is printed and exits 1. With --order the windows are visited
// in a scrambled order first (each must equal its sequential read), exercising the frame
// cache's evictions.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data_prep/shard_reader.h"
#include "tests/testlib.h"

// Reports a reader error on stdout (after the windows printed so far) and exits 1.
static void reader_failed(shard_set *s) {
    printf("error: %s\n", err_msg());
    fflush(stdout);
    if (s) shard_set_close(s);
    exit(1);
}

static void print_array_u32(const uint32_t *v, size_t n) {
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ",%u" : "%u", v[i]);
    putchar(']');
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_prep_reader DIR SPLIT SEQ_LEN [--order]\n");
        return 2;
    }
    int seq_len = atoi(argv[3]);
    int scramble = argc > 4 && !strcmp(argv[4], "--order");
    shard_set s;
    if (shard_set_open(&s, argv[1], argv[2])) reader_failed(NULL);
    int64_t n = shard_set_n_windows(&s, seq_len);
    if (n < 0) reader_failed(&s);
    size_t T = (size_t)seq_len;
    uint32_t *tok = malloc((T + 1) * 4), *doc = malloc(T * 4), *pos = malloc(T * 4);
    uint32_t *tok2 = malloc((T + 1) * 4), *doc2 = malloc(T * 4), *pos2 = malloc(T * 4);
    uint8_t *mask = malloc(T), *mask2 = malloc(T);
    uint32_t *mask32 = malloc(T * 4);
    if (scramble) {
        // Visit windows in a fixed pseudo-random order and compare with sequential reads.
        uint64_t x = 12345;
        for (int64_t k = 0; k < n * 2; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t i = (x >> 33) % (uint64_t)n;
            if (shard_set_window(&s, seq_len, i, tok, mask, doc, pos)) reader_failed(&s);
            shard_set s2;
            if (shard_set_open(&s2, argv[1], argv[2])) reader_failed(&s);
            if (shard_set_window(&s2, seq_len, i, tok2, mask2, doc2, pos2)) {
                shard_set_close(&s2);
                reader_failed(&s);
            }
            shard_set_close(&s2);
            if (memcmp(tok, tok2, (T + 1) * 4) || memcmp(mask, mask2, T) || memcmp(doc, doc2, T * 4) ||
                memcmp(pos, pos2, T * 4))
                test_fail("window %llu differs between a scrambled and a fresh read", (unsigned long long)i);
        }
    }
    for (int64_t i = 0; i < n; i++) {
        if (shard_set_window(&s, seq_len, (uint64_t)i, tok, mask, doc, pos)) reader_failed(&s);
        for (size_t k = 0; k < T; k++) mask32[k] = mask[k];
        putchar('[');
        print_array_u32(tok, T + 1);
        putchar(',');
        print_array_u32(mask32, T);
        putchar(',');
        print_array_u32(doc, T);
        putchar(',');
        print_array_u32(pos, T);
        printf("]\n");
    }
    fprintf(stderr, "fingerprint %s\n", shard_set_fingerprint(&s));
    shard_set_close(&s);
    free(tok), free(doc), free(pos), free(tok2), free(doc2), free(pos2), free(mask), free(mask2), free(mask32);
    return 0;
}
