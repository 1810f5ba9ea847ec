// Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c, docs/fuzzing.md). Most medtune
// parsers take a path (they map the file or hand it to HDF5, libxml2 or zlib), so a harness
// writes each input to a file in a per-process scratch directory and calls the real entry
// point on it. The directory is on /dev/shm when that is writable (no disk I/O per input)
// and is removed at exit.
#ifndef MEDTUNE_TESTS_FUZZ_FUZZ_COMMON_H
#define MEDTUNE_TESTS_FUZZ_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

// The scratch directory of this process (created on first use; aborts when it cannot be).
const char *fuzz_dir(void);
// Joins fuzz_dir() and `name` into `out`.
void fuzz_path(char *out, size_t n, const char *name);
// Makes `path` hold exactly `size` bytes, through a descriptor kept open across inputs: no
// fsync per input (the speed of a campaign), and a harness needs no crash safety. Aborts on
// I/O failure (the harness's fault).
void fuzz_write_path(const char *path, const void *data, size_t size);
// fuzz_write_path to fuzz_dir()/name; the full path goes to `out`.
void fuzz_write(char *out, size_t n, const char *name, const void *data, size_t size);
// A NUL-terminated malloc'd copy of the input (text parsers take C strings).
char *fuzz_cstr(const uint8_t *data, size_t size);

// The contract for bad input is one error line: a parser that fails must have recorded a
// message. Call after every entry point that returned non-zero; aborts (a finding) when the
// failure left no message or a message of more than one line. With MEDTUNE_FUZZ_VERBOSE set
// it prints the message.
void fuzz_expect_error(const char *entry_point);
// Aborts with a message: an invariant of the parser's output does not hold.
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

// Writes the tiny model medtune creates by itself (model/tiny_model.h) into
// fuzz_dir()/name, shrunk to 1 layer of width 16 so loading it costs microseconds.
void fuzz_tiny_model(char *out, size_t n, const char *name);

#endif
