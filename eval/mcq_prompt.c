// The prompts of lm-evaluation-harness's pubmedqa, medqa_4options, medmcqa and mmlu tasks
// (doc_to_text), rebuilt from the fields of the original dataset files, and the Python string
// whitespace rules the harness applies to them (str.strip in MMLU's template, str.rstrip when
// it moves a context's trailing whitespace onto the continuation).
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "eval/mcq.h"

// Python's str.isspace on one code point.
static int py_isspace(unsigned cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

// Decodes the well-formed UTF-8 sequence of `n` bytes at s, or returns 0xFFFFFFFF (never a
// space) for anything else.
static unsigned utf8_decode(const unsigned char *s, size_t n) {
    if (n == 1) return s[0] < 0x80 ? s[0] : 0xFFFFFFFFu;
    if (n == 2 && (s[0] & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80)
        return ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    if (n == 3 && (s[0] & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80)
        return ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    return 0xFFFFFFFFu;  // 4-byte code points are never whitespace
}

static size_t utf8_seq_len(unsigned char c) {
    return c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
}

size_t py_rstrip_len(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    while (len > 0) {
        size_t start = len - 1;
        while (start > 0 && len - start < 4 && (u[start] & 0xC0) == 0x80) start--;
        if (!py_isspace(utf8_decode(u + start, len - start))) break;
        len = start;
    }
    return len;
}

size_t py_lstrip_skip(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq_len(u[i]);
        if (i + n > len || !py_isspace(utf8_decode(u + i, n))) break;
        i += n;
    }
    return i;
}

char *mcq_prompt_pubmedqa(const char *question, const char *const *contexts, size_t n) {
    strbuf b;
    strbuf_init(&b);
    strbuf_puts(&b, "Abstract: ");
    for (size_t i = 0; i < n; i++) {
        if (i) strbuf_puts(&b, "\n");
        strbuf_puts(&b, contexts[i]);
    }
    strbuf_puts(&b, "\nQuestion: ");
    strbuf_puts(&b, question);
    strbuf_puts(&b, "\nAnswer:");
    return strbuf_take(&b);
}

char *mcq_prompt_lettered(const char *head, const char *question, const char *mid,
                          const char *const *options, int n) {
    strbuf b;
    strbuf_init(&b);
    strbuf_puts(&b, head);
    strbuf_puts(&b, question);
    strbuf_puts(&b, mid);
    for (int i = 0; i < n; i++) {
        strbuf_printf(&b, "%c. %s\n", 'A' + i, options[i]);
    }
    strbuf_puts(&b, "Answer:");
    return strbuf_take(&b);
}
