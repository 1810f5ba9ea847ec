// PMC Open Access JATS (.nxml): one document per file: the article-title of <front>, then
// the paragraphs of the <abstract>, then the paragraphs of the <body>, separated by blank
// lines. Figure and table captions, supplementary material and the reference list are left
// out. A file without any text is counted as empty.
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "data_prep/ingest.h"
#include "data_prep/xml_stream.h"

typedef struct {
    strbuf doc, para;
    int in_front, in_body, in_abstract, in_title_group, skip_depth;
    int capture_depth;  // nesting of <p>/<article-title> being captured (lists inside <p>)
} pmc_state;

static int is(const xmlChar *name, const char *want) { return name && !strcmp((const char *)name, want); }

static int is_skipped(const xmlChar *name) {
    return is(name, "fig") || is(name, "table-wrap") || is(name, "supplementary-material") ||
           is(name, "ref-list") || is(name, "disp-formula") || is(name, "table-wrap-foot");
}

static int flush_para(pmc_state *s) {
    if (strbuf_failed(&s->para)) return -1;  // the space on_start could not append
    size_t n = s->para.len;
    const char *p = s->para.data;
    while (n && (*p == ' ' || *p == '\n' || *p == '\t')) p++, n--;
    if (n == 0) return 0;
    if (s->doc.len && strbuf_append(&s->doc, "\n\n", 2)) return -1;
    if (strbuf_append(&s->doc, p, n)) return -1;
    strbuf_clear(&s->para);
    return 0;
}

static void on_start(pmc_state *s, const xmlChar *name, int empty) {
    if (empty) return;
    if (s->skip_depth) {
        if (is_skipped(name)) s->skip_depth++;
        return;
    }
    if (is(name, "front")) s->in_front = 1;
    else if (is(name, "body")) s->in_body = 1;
    else if (is(name, "abstract") && s->in_front) s->in_abstract = 1;
    else if (is(name, "title-group") && s->in_front) s->in_title_group = 1;
    else if (is_skipped(name) && (s->in_body || s->in_abstract)) s->skip_depth = 1;
    else if ((is(name, "p") && (s->in_body || s->in_abstract)) ||
             (is(name, "article-title") && s->in_title_group)) {
        if (s->capture_depth++ == 0) strbuf_clear(&s->para);
        else strbuf_putc(&s->para, ' ');
    }
}

static int on_end(pmc_state *s, const xmlChar *name) {
    if (s->skip_depth) {
        if (is_skipped(name)) s->skip_depth--;
        return 0;
    }
    if (is(name, "front")) s->in_front = 0;
    else if (is(name, "body")) s->in_body = 0;
    else if (is(name, "abstract")) s->in_abstract = 0;
    else if (is(name, "title-group")) s->in_title_group = 0;
    else if ((is(name, "p") || is(name, "article-title")) && s->capture_depth) {
        if (--s->capture_depth == 0) return flush_para(s);
    }
    return 0;
}

int ingest_pmc_nxml(ingest_ctx *ic, const char *path) {
    xml_stream x;
    if (xml_stream_open(&x, path)) return -1;
    pmc_state s = {0};
    int rc = 0, ret;
    while ((ret = xmlTextReaderRead(x.reader)) == 1) {
        int type = xmlTextReaderNodeType(x.reader);
        const xmlChar *name = xmlTextReaderConstLocalName(x.reader);
        if (type == XML_READER_TYPE_ELEMENT) {
            on_start(&s, name, xmlTextReaderIsEmptyElement(x.reader));
        } else if (type == XML_READER_TYPE_END_ELEMENT) {
            if ((rc = on_end(&s, name))) break;
        } else if ((type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_CDATA ||
                    type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE) &&
                   s.capture_depth && !s.skip_depth) {
            const char *v = (const char *)xmlTextReaderConstValue(x.reader);
            if (v && (rc = strbuf_append(&s.para, v, strlen(v)))) break;
        }
    }
    long b = xml_stream_bytes(&x);
    if (b > 0) ic->bytes_in += (uint64_t)b;
    ic->n_records++;
    if (rc) {
        rc = err_prefix("%s", path);
    } else if (ret < 0) {
        rc = ingest_malformed(ic, "%s:%d: broken XML: %s", path, x.error_line,
                              x.error[0] ? x.error : "parse error");
    } else if (s.doc.len == 0) {
        ic->n_empty++;
    } else {
        document d = {0};
        d.text = s.doc.data;
        d.len = s.doc.len;
        snprintf(d.where, sizeof d.where, "%s", path);
        rc = ic->emit(ic->user, &d);
    }
    strbuf_free(&s.doc);
    strbuf_free(&s.para);
    xml_stream_close(&x);
    return rc;
}
