// Small string predicates shared by the readers and the CLI.
#ifndef MEDTUNE_COMMON_STR_H
#define MEDTUNE_COMMON_STR_H

// True when `s` ends with `suffix` (case-sensitive; "" is a suffix of everything).
int str_has_suffix(const char *s, const char *suffix);

#endif
