#include "report/report_html.h"

void html_escape(strbuf *b, const char *s) {
    const char *run = s;
    for (; *s; s++) {
        const char *ent = *s == '&'    ? "&amp;"
                          : *s == '<'  ? "&lt;"
                          : *s == '>'  ? "&gt;"
                          : *s == '"'  ? "&quot;"
                          : *s == '\'' ? "&#39;"
                                       : NULL;
        if (!ent) continue;
        strbuf_append(b, run, (size_t)(s - run));
        strbuf_puts(b, ent);
        run = s + 1;
    }
    strbuf_append(b, run, (size_t)(s - run));
}
