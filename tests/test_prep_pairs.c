// test_prep_pairs DIR SPLIT [--rows SEQ_LEN]: prints every preference pair of a shard split,
// read through the reader (shard_set_pair + shard_set_read), as one JSON line
// [prompt_ids, prompt_trained, chosen_ids, chosen_trained, rejected_ids, rejected_trained],
// or with --rows the pair's two rows (shard_set_pair_rows) as
// [chosen_row, chosen_mask, rejected_row, rejected_mask], null for a skipped pair; for
// tests/prep/check_preference.py. A reader error is printed and exits 1.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void print_rows(shard_set *s, uint64_t n, int seq_len) {
    size_t w = (size_t)seq_len + 1;
    uint32_t *tok = malloc(2 * w * sizeof *tok);
    uint8_t *mask = malloc(2 * w);
    if (!tok || !mask) {
        err_set("out of memory");
        reader_failed(s);
    }
    for (uint64_t i = 0; i < n; i++) {
        int rc = shard_set_pair_rows(s, seq_len, i, tok, mask);
        if (rc < 0) reader_failed(s);
        if (rc > 0) {
            printf("null\n");
            continue;
        }
        putchar('[');
        for (int r = 0; r < 2; r++) {
            printf(r ? ",[" : "[");
            for (size_t k = 0; k < w; k++) printf(k ? ",%u" : "%u", tok[r * w + k]);
            printf("],[");
            for (size_t k = 0; k + 1 < w; k++) printf(k ? ",%d" : "%d", mask[r * (w - 1) + k]);
            putchar(']');
        }
        printf("]\n");
    }
    free(tok);
    free(mask);
}

int main(int argc, char **argv) {
    if (argc != 3 && !(argc == 5 && !strcmp(argv[3], "--rows"))) {
        fprintf(stderr, "usage: test_prep_pairs DIR SPLIT [--rows SEQ_LEN]\n");
        return 2;
    }
    shard_set s;
    if (shard_set_open(&s, argv[1], argv[2])) reader_failed(NULL);
    uint64_t n = shard_set_n_pairs(&s);
    if (argc == 5) {
        print_rows(&s, n, atoi(argv[4]));
        shard_set_close(&s);
        return 0;
    }
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
