// Text cleaning: UTF-8 validation, Unicode NFC (utf8proc) and whitespace normalisation.
//   - "\r\n" and lone "\r", U+2028/U+2029, form feed and vertical tab become "\n";
//   - tabs, no-break and other Unicode spaces become " "; zero-width spaces, the BOM and
//     other C0/C1 control characters are removed;
//   - runs of spaces collapse to one; spaces at line starts and ends are removed;
//   - more than one blank line collapses to one; leading and trailing blank lines go.
#ifndef MEDTUNE_DATA_PREP_CLEAN_H
#define MEDTUNE_DATA_PREP_CLEAN_H

#include <stddef.h>

#include "common/strbuf.h"

// Number of code points of valid UTF-8.
size_t utf8_length(const char *s, size_t n);

// Cleans s[0..n) into out (replacing its content). Returns 1 if the input is not valid
// UTF-8 (out untouched), 0 on success, -1 when out of memory.
int clean_text(const char *s, size_t n, strbuf *out);

#endif
