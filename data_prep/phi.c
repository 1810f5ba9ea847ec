#define PCRE2_CODE_UNIT_WIDTH 8
#include "data_prep/phi.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

struct phi_scrubber {
    pcre2_code *re[PHI_KINDS];
};

// ASCII classes on purpose: [0-9] and \w without PCRE2_UCP, so that digits of other
// scripts and letters around numbers behave predictably.
static const char *const PATTERNS[PHI_KINDS] = {
    [PHI_EMAIL] = "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}",
    [PHI_URL] = "(?:\\b(?:https?|ftp)://|\\bwww\\.)[^\\s<>\"]*[^\\s<>\".,;:!?)\\]'}]",
    [PHI_PHONE] = "(?<![\\w+])(?:(?:\\+?1[ .-]?)?(?:\\([0-9]{3}\\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}"
                  "|\\+[0-9]{1,3}(?:[ .-][0-9]{2,8}){2,4})(?!\\w)",
    [PHI_ID] = "(?<![\\w.,])(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{7,})(?!\\w|[.,][0-9])",
};

static const char *const NAMES[PHI_KINDS] = {"email", "url", "phone", "id"};
static const char *const PLACEHOLDERS[PHI_KINDS] = {"[EMAIL]", "[URL]", "[PHONE]", "[ID]"};

const char *phi_kind_name(phi_kind k) { return NAMES[k]; }

phi_scrubber *phi_scrubber_new(void) {
    phi_scrubber *p = calloc(1, sizeof *p);
    if (!p) return err_set("phi: out of memory"), NULL;
    for (int k = 0; k < PHI_KINDS; k++) {
        int code;
        PCRE2_SIZE off;
        p->re[k] = pcre2_compile((PCRE2_SPTR)PATTERNS[k], PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &off, NULL);
        if (!p->re[k]) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof msg);
            err_set("phi: pattern %s at %zu: %s", NAMES[k], (size_t)off, (const char *)msg);
            phi_scrubber_free(p);
            return NULL;
        }
        pcre2_jit_compile(p->re[k], PCRE2_JIT_COMPLETE);  // falls back to the interpreter
    }
    return p;
}

void phi_scrubber_free(phi_scrubber *p) {
    if (!p) return;
    for (int k = 0; k < PHI_KINDS; k++) pcre2_code_free(p->re[k]);
    free(p);
}

// Cheap tests that rule a pattern out before running it.
static int may_match(phi_kind k, const char *s, size_t n) {
    switch (k) {
    case PHI_EMAIL: return memchr(s, '@', n) != NULL;
    case PHI_URL: return memmem(s, n, "://", 3) || memmem(s, n, "www.", 4);
    case PHI_PHONE:
    case PHI_ID: {  // both need at least 7 digits
        int digits = 0;
        for (size_t i = 0; i < n && digits < 7; i++) digits += s[i] >= '0' && s[i] <= '9';
        return digits >= 7;
    }
    default: return 1;
    }
}

int phi_scrub(const phi_scrubber *p, strbuf *buf, uint64_t counts[PHI_KINDS]) {
    strbuf tmp;
    strbuf_init(&tmp);
    for (int k = 0; k < PHI_KINDS; k++) {
        if (!buf->len || !may_match((phi_kind)k, buf->data, buf->len)) continue;
        PCRE2_SIZE cap = buf->len + 64;
        int rc;
        for (;;) {
            // pcre2_substitute writes the whole output (and its NUL) into tmp's memory.
            strbuf_clear(&tmp);
            if (strbuf_reserve(&tmp, cap)) {
                strbuf_free(&tmp);
                return err_set("phi: out of memory");
            }
            PCRE2_SIZE outlen = tmp.cap;
            rc = pcre2_substitute(p->re[k], (PCRE2_SPTR)buf->data, buf->len, 0,
                                  PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH |
                                      PCRE2_NO_UTF_CHECK,
                                  NULL, NULL, (PCRE2_SPTR)PLACEHOLDERS[k], PCRE2_ZERO_TERMINATED,
                                  (PCRE2_UCHAR *)tmp.data, &outlen);
            if (rc == PCRE2_ERROR_NOMEMORY) {
                cap = outlen;
                continue;
            }
            if (rc < 0) {
                strbuf_free(&tmp);
                return err_set("phi: matching %s failed (%d)", NAMES[k], rc);
            }
            tmp.len = outlen;
            break;
        }
        if (rc > 0) {
            counts[k] += (uint64_t)rc;
            strbuf swap = *buf;
            *buf = tmp;
            tmp = swap;
        }
    }
    strbuf_free(&tmp);
    return 0;
}
