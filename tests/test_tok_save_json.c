// tokenizer_to_json round trip: every tokenizer given as an argument (tokenizer.json files of
// byte-level and SentencePiece-style BPE, GGUF files), written as tokenizer.json and loaded
// again, has the same fingerprint (which covers everything that changes encoding) and encodes
// a few texts to the same ids. tests/tokenizer/check_save_json.py chooses the sources. The
// written files are left in $MEDTUNE_TEST_BIN/tok_save_json/<source name>.json for
// tests/tokenizer/check_save_json.py, which runs this program and reads them with HF
// `tokenizers`.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "tokenizer/tokenizer.h"
#include "tests/testlib.h"

static const char *const TEXTS[] = {
    "Metformin lowers HbA1c by ~1.5% in type 2 diabetes.",
    "  runs\tof   whitespace \n\n and caf\xc3\xa9, \xe7\x97\x87\xe7\x8a\xb6 \xf0\x9f\xa7\xa0",
    "</s><s>special tokens <|endoftext|><|im_start|>user\n12345<|im_end|>",
};

static void round_trip(const char *source, const char *work, int *checked) {
    tokenizer *a = tokenizer_load(source);
    if (!a) test_fail("%s: %s", source, err_msg());
    char *json = tokenizer_to_json(a);
    if (!json) test_fail("%s: tokenizer_to_json: %s", source, err_msg());
    char path[8300];
    const char *name = strrchr(source, '/');
    snprintf(path, sizeof path, "%s/%s.json", work, name ? name + 1 : source);
    if (file_write_atomic(path, json, strlen(json))) test_fail("%s", err_msg());
    free(json);
    tokenizer *b = tokenizer_load(path);
    if (!b) test_fail("%s written from %s does not load: %s", path, source, err_msg());
    if (strcmp(tokenizer_fingerprint(a), tokenizer_fingerprint(b)))
        test_fail("%s: fingerprint %.12s, written back %.12s", source, tokenizer_fingerprint(a),
                  tokenizer_fingerprint(b));
    for (size_t i = 0; i < sizeof TEXTS / sizeof TEXTS[0]; i++) {
        id_vec x = {0}, y = {0};
        if (tokenizer_encode(a, TEXTS[i], strlen(TEXTS[i]), 1, &x) ||
            tokenizer_encode(b, TEXTS[i], strlen(TEXTS[i]), 1, &y))
            test_fail("%s: encode failed", source);
        if (x.len != y.len || memcmp(x.data, y.data, x.len * sizeof *x.data))
            test_fail("%s: text %zu encodes to %zu ids, written back to %zu (or other ids)",
                      source, i, x.len, y.len);
        id_vec_free(&x);
        id_vec_free(&y);
    }
    printf("%s: fingerprint %.12s kept, %zu texts encode alike\n", source,
           tokenizer_fingerprint(a), sizeof TEXTS / sizeof TEXTS[0]);
    tokenizer_free(a);
    tokenizer_free(b);
    (*checked)++;
}

int main(int argc, char **argv) {
    if (argc < 2) test_fail("usage: test_tok_save_json SOURCE... (tokenizer dirs, tokenizer.json or GGUF)");
    const char *work = test_env("MEDTUNE_TEST_BIN", "/tmp");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tok_save_json", work);
    if (dir_remove_recursive(dir) || dir_create(dir)) test_fail("%s", err_msg());
    int checked = 0;
    for (int i = 1; i < argc; i++) round_trip(argv[i], dir, &checked);
    printf("OK: %d tokenizers\n", checked);
    return 0;
}
