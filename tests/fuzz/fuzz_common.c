#include "tests/fuzz/fuzz_common.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "model/tiny_model.h"

static char scratch[512];

static void scratch_remove(void) {
    if (scratch[0]) dir_remove_recursive(scratch);
}

void fuzz_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FUZZ FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

const char *fuzz_dir(void) {
    if (scratch[0]) return scratch;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    // The pid in the name lets tools/fuzz.sh remove the directories of crashed processes.
    snprintf(scratch, sizeof scratch, "%s/medtune-fuzz-%d-XXXXXX", base && *base ? base : "/tmp",
             (int)getpid());
    if (!mkdtemp(scratch)) fuzz_fail("cannot create a scratch directory %s", scratch);
    atexit(scratch_remove);
    return scratch;
}

void fuzz_path(char *out, size_t n, const char *name) {
    if (path_join(out, n, fuzz_dir(), name) != 0) fuzz_fail("path too long: %s", name);
}

// The files a harness writes each input to stay open: a path lookup, open and close per input
// were a fifth of the metrics harness's time. An entry whose file was unlinked meanwhile (the
// shard harness empties its directory) is reopened; paths beyond the table are opened per write.
enum { KEPT_FILES = 16 };
static struct {
    char path[4096];
    int fd;
} kept[KEPT_FILES];
static int n_kept;

static int kept_fd(const char *path) {
    for (int i = 0; i < n_kept; i++) {
        if (strcmp(kept[i].path, path)) continue;
        struct stat st;
        if (fstat(kept[i].fd, &st) == 0 && st.st_nlink > 0) return kept[i].fd;
        close(kept[i].fd);
        kept[i].fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        return kept[i].fd;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0 && n_kept < KEPT_FILES && strlen(path) < sizeof kept[0].path) {
        snprintf(kept[n_kept].path, sizeof kept[0].path, "%s", path);
        kept[n_kept++].fd = fd;
    }
    return fd;
}

void fuzz_write_path(const char *path, const void *data, size_t size) {
    // pwrite/ftruncate rather than stdio: fopen allocates a buffer per input, and under ASan
    // every allocation records a stack trace.
    int fd = kept_fd(path);
    if (fd < 0) fuzz_fail("cannot write %s", path);
    const uint8_t *p = data;
    for (size_t done = 0; done < size;) {
        ssize_t n = pwrite(fd, p + done, size - done, (off_t)done);
        if (n <= 0) fuzz_fail("cannot write %s", path);
        done += (size_t)n;
    }
    if (ftruncate(fd, (off_t)size) != 0) fuzz_fail("cannot write %s", path);
    int is_kept = 0;
    for (int i = 0; i < n_kept; i++) is_kept |= kept[i].fd == fd;
    if (!is_kept && close(fd) != 0) fuzz_fail("cannot write %s", path);
}

void fuzz_write(char *out, size_t n, const char *name, const void *data, size_t size) {
    fuzz_path(out, n, name);
    fuzz_write_path(out, data, size);
}

char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) fuzz_fail("out of memory");
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

void fuzz_expect_error(const char *entry_point) {
    // err_msg() says "unknown error" only when nothing was recorded.
    if (!strcmp(err_msg(), "unknown error"))
        fuzz_fail("%s failed without an error message", entry_point);
    // The CLI prints the message as one line; text from the input must not break it.
    if (strpbrk(err_msg(), "\n\r")) fuzz_fail("%s: the error message spans lines: %s", entry_point, err_msg());
    // For triage and for checking that seeds get past the first checks.
    if (getenv("MEDTUNE_FUZZ_VERBOSE")) fprintf(stderr, "%s: %s\n", entry_point, err_msg());
}

void fuzz_tiny_model(char *out, size_t n, const char *name) {
    tiny_model_options o;
    tiny_model_options_default(&o);
    o.hidden_size = 16;
    o.intermediate_size = 32;
    o.n_layers = 1;
    o.n_heads = 2;
    o.n_kv_heads = 1;
    o.max_position_embeddings = 64;
    fuzz_path(out, n, name);
    if (tiny_model_write(out, &o) != 0) fuzz_fail("tiny model: %s", err_msg());
}
