// Small string helpers shared by the readers and the CLI.
#ifndef MEDTUNE_COMMON_STR_H
#define MEDTUNE_COMMON_STR_H

#include <stddef.h>

// True when `s` ends with `suffix` (case-sensitive; "" is a suffix of everything).
int str_has_suffix(const char *s, const char *suffix);
// A NUL-terminated copy of the n bytes at s (which may hold NULs), or NULL when out of memory.
char *str_dup_n(const char *s, size_t n);

#endif
