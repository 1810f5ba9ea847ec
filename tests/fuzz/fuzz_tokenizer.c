// libFuzzer harness: tokenizer.json and the tokenizer metadata of GGUF files. The first
// input byte picks the loader, the rest is the file (written to a scratch file, since
// tokenizer_load takes a path):
//   even  tokenizer.json (alone in its directory: no tokenizer_config.json)
//   odd   a .gguf file whose tokenizer.ggml.* keys describe the tokenizer
// A tokenizer that loads must then work: it encodes a fixed clinical sentence and the first
// bytes of the input itself, decodes what it produced, and names each id.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/fileio.h"
#include "tests/fuzz/fuzz_common.h"
#include "tokenizer/tokenizer.h"

static void exercise(const tokenizer *t, const char *text, size_t len) {
    id_vec ids = {0};
    if (tokenizer_encode(t, text, len, 1, &ids) != 0) {
        fuzz_expect_error("tokenizer_encode");
        return;
    }
    int vocab = tokenizer_vocab_size(t);
    for (size_t i = 0; i < ids.len; i++) {
        if (ids.data[i] < 0 || ids.data[i] >= vocab)
            fuzz_fail("encode gave id %d outside the vocabulary of %d", ids.data[i], vocab);
        tokenizer_token_str(t, ids.data[i]);
    }
    char *out = NULL;
    for (int skip = 0; skip < 2; skip++) {
        if (tokenizer_decode(t, ids.data, ids.len, skip, &out, NULL) != 0)
            fuzz_expect_error("tokenizer_decode");
        free(out);
        out = NULL;
    }
    id_vec_free(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char SENTENCE[] = "Metformin 500 mg twice daily lowers HbA1c by ~1.5% (n=42).\n\t"
                                   "Ärzte — 糖尿病 <|im_end|> </s>";
    if (size == 0) return 0;
    err_clear();
    // One directory per loader, made once: each input overwrites the file in it.
    static char paths[2][4096];
    char *path = paths[data[0] & 1];
    if (!path[0]) {
        char dir[4096];
        fuzz_path(dir, sizeof dir, data[0] & 1 ? "gguf" : "json");
        if (dir_create(dir) != 0) fuzz_fail("%s", err_msg());
        if (path_join(path, sizeof paths[0], dir, data[0] & 1 ? "tokenizer.gguf" : "tokenizer.json"))
            fuzz_fail("path");
    }
    fuzz_write_path(path, data + 1, size - 1);
    tokenizer *t = tokenizer_load(path);
    if (!t) {
        fuzz_expect_error("tokenizer_load");
        return 0;
    }
    exercise(t, SENTENCE, sizeof SENTENCE - 1);
    exercise(t, (const char *)data + 1, size - 1 < 256 ? size - 1 : 256);
    tokenizer_chat_template(t);
    tokenizer_fingerprint(t);
    tokenizer_token_id(t, "<|im_end|>");
    tokenizer_free(t);
    return 0;
}
