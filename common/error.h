// Error reporting for the library: functions return 0 on success and -1 on failure after
// recording one line "<file>: <what is wrong>" with err_set(). The CLI prints it as
// "medtune: error: <line>" and exits 1. Library code never exits or aborts on bad input.
#ifndef MEDTUNE_COMMON_ERROR_H
#define MEDTUNE_COMMON_ERROR_H

#include <stddef.h>

// Records the message (printf-style) and returns -1 so callers can `return err_set(...)`.
int err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Prepends "<prefix>: " to the current message (to add the file name at an outer level).
int err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *err_msg(void);
void err_clear(void);

// Allocation that reports failure as an error instead of returning NULL silently.
void *xmalloc_or_err(size_t n, const char *what);
void *xcalloc_or_err(size_t count, size_t size, const char *what);

#endif
