#include "data_prep/xml_stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"

static void on_error(void *arg, xmlErrorPtr e) {
    xml_stream *x = arg;
    if (!e || e->level < XML_ERR_ERROR || x->error[0]) return;
    snprintf(x->error, sizeof x->error, "%s", e->message ? e->message : "parse error");
    size_t n = strlen(x->error);
    while (n > 0 && (x->error[n - 1] == '\n' || x->error[n - 1] == ' ')) x->error[--n] = '\0';
    x->error_line = e->line;
}

// libxml2 reports some failures (an unreadable file) through the global handler even with
// a reader handler installed; this keeps them off stderr.
static void silent_generic(void *ctx, const char *msg, ...) {
    (void)ctx;
    (void)msg;
}

int xml_stream_open(xml_stream *x, const char *path) {
    memset(x, 0, sizeof *x);
    struct stat st;
    if (stat(path, &st) != 0) return err_set("%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return err_set("%s: not a regular file", path);
    xmlSetGenericErrorFunc(NULL, silent_generic);
    // No network, no external DTD, no entity substitution: PubMed files name a DTD by URL.
    x->reader = xmlReaderForFile(path, NULL, XML_PARSE_NONET | XML_PARSE_COMPACT | XML_PARSE_HUGE |
                                                 XML_PARSE_NOWARNING | XML_PARSE_NOERROR);
    if (!x->reader) return err_set("%s: cannot open as XML", path);
    xmlTextReaderSetStructuredErrorHandler(x->reader, on_error, x);
    return 0;
}

void xml_stream_close(xml_stream *x) {
    if (x->reader) xmlFreeTextReader(x->reader);
    x->reader = NULL;
    // libxml2 keeps a copy of the last parse error (message and names strdup'd) in a global
    // until the next error; the message is in x->error already, so a closed stream leaves no
    // allocation of its own behind.
    xmlResetLastError();
}

long xml_stream_bytes(const xml_stream *x) { return xmlTextReaderByteConsumed(x->reader); }
