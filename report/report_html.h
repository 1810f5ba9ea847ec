// HTML text for the report page.
#ifndef MEDTUNE_REPORT_REPORT_HTML_H
#define MEDTUNE_REPORT_REPORT_HTML_H

#include "common/strbuf.h"

// Appends `s` with &, <, >, " and ' replaced by entities (safe in text and attribute values).
void html_escape(strbuf *b, const char *s);

#endif
