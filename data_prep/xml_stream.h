// Shared plumbing for the streaming XML readers (libxml2 xmlTextReader): opening plain or
// gzipped files without network access or entity expansion, capturing parser errors instead
// of letting libxml2 print them.
#ifndef MEDTUNE_DATA_PREP_XML_STREAM_H
#define MEDTUNE_DATA_PREP_XML_STREAM_H

#include <libxml/xmlreader.h>
#include <stddef.h>

typedef struct {
    xmlTextReaderPtr reader;
    char error[256];  // first parser error
    int error_line;
} xml_stream;

int xml_stream_open(xml_stream *x, const char *path);
void xml_stream_close(xml_stream *x);
// Input bytes consumed so far.
long xml_stream_bytes(const xml_stream *x);

#endif
