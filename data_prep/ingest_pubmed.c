// PubMed/MEDLINE baseline XML: one document per <PubmedArticle> (or <PubmedBookArticle>):
// the ArticleTitle, then each AbstractText of the <Abstract> on its own line, prefixed by its
// Label ("METHODS: ..."). <OtherAbstract> (translations, plain-language summaries) is left out.
// Records without an abstract are counted as empty and skipped.
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "data_prep/ingest.h"
#include "data_prep/xml_stream.h"

typedef struct {
    strbuf title, abstract;
    int in_record, in_abstract, in_other_abstract;
    int capture;  // 0 none, 1 title, 2 abstract section
    int n_sections;
    int record_line;
} pubmed_state;

static int is(const xmlChar *name, const char *want) { return name && !strcmp((const char *)name, want); }

static int emit_record(ingest_ctx *ic, pubmed_state *s, const char *path) {
    ic->n_records++;
    if (s->abstract.len == 0) {
        ic->n_empty++;
        return 0;
    }
    strbuf doc = {0};
    if ((s->title.len && (strbuf_append(&doc, s->title.data, s->title.len) ||
                          strbuf_append(&doc, "\n", 1))) ||
        strbuf_append(&doc, s->abstract.data, s->abstract.len)) {
        strbuf_free(&doc);
        return err_prefix("%s", path);
    }
    document d = {0};
    d.text = doc.data;
    d.len = doc.len;
    snprintf(d.where, sizeof d.where, "%s:%d", path, s->record_line);
    int rc = ic->emit(ic->user, &d);
    strbuf_free(&doc);
    return rc;
}

static int on_element(pubmed_state *s, xmlTextReaderPtr r, const xmlChar *name) {
    if (is(name, "PubmedArticle") || is(name, "PubmedBookArticle")) {
        s->in_record = 1;
        s->in_abstract = s->in_other_abstract = s->capture = s->n_sections = 0;
        strbuf_clear(&s->title);
        strbuf_clear(&s->abstract);
        s->record_line = xmlTextReaderGetParserLineNumber(r);
        return 0;
    }
    if (!s->in_record) return 0;
    int empty = xmlTextReaderIsEmptyElement(r);
    if (is(name, "Abstract") && !empty) {
        s->in_abstract = 1;
    } else if (is(name, "OtherAbstract") && !empty) {
        s->in_other_abstract = 1;
    } else if (is(name, "ArticleTitle") && !s->in_abstract && !s->in_other_abstract && !empty) {
        strbuf_clear(&s->title);
        s->capture = 1;
    } else if (is(name, "AbstractText") && s->in_abstract && !s->in_other_abstract && !empty) {
        if (s->n_sections++ && strbuf_append(&s->abstract, "\n", 1)) return -1;
        xmlChar *label = xmlTextReaderGetAttribute(r, (const xmlChar *)"Label");
        int rc = 0;
        if (label && *label)
            rc = strbuf_append(&s->abstract, (const char *)label, strlen((const char *)label)) ||
                 strbuf_append(&s->abstract, ": ", 2);
        xmlFree(label);
        if (rc) return -1;
        s->capture = 2;
    }
    return 0;
}

// Whether the record being read was closed before the parser met an error. libxml2's reader
// reports the error before it delivers the end of an element whose closing tag it has parsed
// (it reads ahead to find what follows), so a record ending just before a break would be lost.
// The parser adds a following sibling to the record's element only after its closing tag.
static int record_closed(xmlTextReaderPtr r) {
    xmlNodePtr n = xmlTextReaderCurrentNode(r);
    while (n && !(n->type == XML_ELEMENT_NODE &&
                  (is(n->name, "PubmedArticle") || is(n->name, "PubmedBookArticle"))))
        n = n->parent;
    return n && n->next;
}

int ingest_pubmed_xml(ingest_ctx *ic, const char *path) {
    xml_stream x;
    if (xml_stream_open(&x, path)) return -1;
    pubmed_state s = {0};
    int rc = 0, ret;
    long last_bytes = 0;
    while ((ret = xmlTextReaderRead(x.reader)) == 1) {
        int type = xmlTextReaderNodeType(x.reader);
        if (type == XML_READER_TYPE_ELEMENT) {
            if ((rc = on_element(&s, x.reader, xmlTextReaderConstLocalName(x.reader)))) break;
        } else if (type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_CDATA ||
                   type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE) {
            if (!s.capture) continue;
            const char *v = (const char *)xmlTextReaderConstValue(x.reader);
            if (v && strbuf_append(s.capture == 1 ? &s.title : &s.abstract, v, strlen(v))) {
                rc = -1;
                break;
            }
        } else if (type == XML_READER_TYPE_END_ELEMENT) {
            const xmlChar *name = xmlTextReaderConstLocalName(x.reader);
            if (is(name, "ArticleTitle") || is(name, "AbstractText")) {
                s.capture = 0;
            } else if (is(name, "Abstract")) {
                s.in_abstract = 0;
            } else if (is(name, "OtherAbstract")) {
                s.in_other_abstract = 0;
            } else if (s.in_record && (is(name, "PubmedArticle") || is(name, "PubmedBookArticle"))) {
                s.in_record = 0;
                long b = xml_stream_bytes(&x);
                if (b > last_bytes) ic->bytes_in += (uint64_t)(b - last_bytes), last_bytes = b;
                if ((rc = emit_record(ic, &s, path))) break;
            }
        }
    }
    if (!rc && ret < 0 && s.in_record && record_closed(x.reader)) {
        s.in_record = 0;
        rc = emit_record(ic, &s, path);
    }
    if (!rc && ret < 0) {
        if (s.in_record) ic->n_records++;
        rc = ingest_malformed(ic, "%s:%d: broken XML: %s", path, x.error_line,
                              x.error[0] ? x.error : "parse error");
    }
    if (!rc) {
        long b = xml_stream_bytes(&x);
        if (b > last_bytes) ic->bytes_in += (uint64_t)(b - last_bytes);
    }
    strbuf_free(&s.title);
    strbuf_free(&s.abstract);
    xml_stream_close(&x);
    return rc;
}
