// test_prep_pairs DIR SPLIT: prints every preference pair of a shard split, read through the
// reader (shard_set_pair + shard_set_read), as one JSON line
// [prompt_ids, prompt_trained, chosen_ids, chosen_trained, rejected_ids, rejected_trained]
// for tests/prep/check_preference.py; a reader error is printed and exits 1.
#include <stdio.h>
#include <stdlib.h>

#include "common/error.h"
#include "data_prep/shard_format.h"
#include "data_prep/shard_reader.h"

static void reader_failed(shard_set *s) {
    printf("error: %s\n", err_msg());
    fflush(stdout);
    if (s) shard_set_close(s);
    exit(1);
}

static void print_segment(const uint32_t *w, uint64_t n) {
    putchar('[');
    for (uint64_t i = 0; i < n; i++) printf(i ? ",%u" : "%u", w[i] & SHARD_TOKEN_MASK);
    printf("],[");
    for (uint64_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", (w[i] & SHARD_TRAINED) ? 1 : 0);
    putchar(']');
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test_prep_pairs DIR SPLIT\n");
        return 2;
    }
    shard_set s;
    if (shard_set_open(&s, argv[1], argv[2])) reader_failed(NULL);
    uint64_t n = shard_set_n_pairs(&s);
    uint32_t *w = NULL;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t start[3], len[3];
        if (shard_set_pair(&s, i, start, len)) reader_failed(&s);
        putchar('[');
        for (int k = 0; k < 3; k++) {
            uint32_t *grown = realloc(w, (len[k] + 1) * sizeof *w);
            if (!grown) {
                err_set("out of memory");
                reader_failed(&s);
            }
            w = grown;
            if (shard_set_read(&s, start[k], len[k], w)) reader_failed(&s);
            if (k) putchar(',');
            print_segment(w, len[k]);
        }
        printf("]\n");
    }
    free(w);
    shard_set_close(&s);
    return 0;
}
