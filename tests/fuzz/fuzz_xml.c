// libFuzzer harness: PubMed baseline XML and PMC JATS articles. The first input byte picks
// the reader (even: pubmed-xml, odd: pmc-nxml) and strict mode (bit 1); the rest is the file,
// written to a scratch file because the readers stream from a path through libxml2. Every
// document a reader yields must be NUL-terminated text of the length it claims.
#include <stdint.h>
#include <string.h>

#include "common/error.h"
#include "data_prep/ingest.h"
#include "tests/fuzz/fuzz_common.h"

static int emit(void *user, const document *doc) {
    (void)user;
    if (doc->is_chat) fuzz_fail("%s: an XML reader produced a conversation", doc->where);
    if (strlen(doc->text) != doc->len)
        fuzz_fail("%s: text of %zu bytes has length %zu", doc->where, strlen(doc->text), doc->len);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    err_clear();
    int pmc = data[0] & 1;
    char path[4096];
    fuzz_write(path, sizeof path, pmc ? "article.nxml" : "pubmed.xml", data + 1, size - 1);
    ingest_ctx ic = {.emit = emit, .strict = (data[0] >> 1) & 1};
    if (ingest_file(&ic, path, pmc ? INPUT_PMC_NXML : INPUT_PUBMED_XML) != 0)
        fuzz_expect_error("ingest_file");
    return 0;
}
