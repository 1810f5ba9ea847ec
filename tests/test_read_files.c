// Whole-file and line reading (common/fileio.c file_read_all, data_prep/line_reader.c) on
// files of every size class their buffers distinguish: empty, a few bytes, around 4 KiB and
// 64 KiB, and lines longer than one 256 KiB read; plain, gzip-compressed and (file_read_all)
// a FIFO, whose size is unknown in advance. The expected lines are the test's own split of
// the bytes it wrote: on '\n', one trailing '\r' removed, a last line without '\n' kept.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "data_prep/line_reader.h"
#include "tests/testlib.h"

static char dir[] = "/tmp/medtune_read_XXXXXX";

// Deterministic text: lines of 0 to 2000 bytes, some ending in "\r\n", two of 300 000 and
// 600 000 bytes, and no newline at the very end.
static char *make_text(size_t *len) {
    size_t cap = 4u << 20, n = 0;
    char *t = malloc(cap);
    if (!t) test_fail("out of memory");
    uint64_t s = 42;
    for (int line = 0; n < cap - 700000; line++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t w = line == 40 ? 300000 : line == 90 ? 600000 : (size_t)(s >> 33) % 2001;
        for (size_t i = 0; i < w; i++) t[n++] = (char)('a' + (i * 7 + (size_t)line) % 26);
        if (n > 1500000) break;
        if ((s >> 20) % 5 == 0) t[n++] = '\r';
        t[n++] = '\n';
    }
    *len = n;
    return t;
}

static void write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) test_fail("cannot write %s", path);
}

static void check_lines(const char *path, const char *text, size_t n) {
    line_reader r;
    if (line_reader_open(&r, path)) test_fail("%s: %s", path, err_msg());
    size_t pos = 0, count = 0;
    const char *line;
    size_t len;
    int got;
    while ((got = line_reader_next(&r, &line, &len)) == 1) {
        if (pos >= n) test_fail("%s: a line after the end of the text", path);
        const char *nl = memchr(text + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - text) : n, want = end - pos;
        if (want > 0 && text[end - 1] == '\r') want--;
        if (len != want || memcmp(line, text + pos, want))
            test_fail("%s: line %zu: %zu bytes, expected %zu", path, count + 1, len, want);
        pos = nl ? end + 1 : n;
        count++;
    }
    if (got < 0) test_fail("%s: %s", path, err_msg());
    if (pos != n) test_fail("%s: stopped at byte %zu of %zu", path, pos, n);
    if (r.line != count || r.bytes != n)
        test_fail("%s: reader counted %llu lines, %llu bytes; expected %zu, %zu", path,
                  (unsigned long long)r.line, (unsigned long long)r.bytes, count, n);
    line_reader_close(&r);
}

static void check_read_all(const char *path, const char *text, size_t n) {
    char *data;
    size_t len;
    if (file_read_all(path, &data, &len)) test_fail("%s: %s", path, err_msg());
    if (len != n || memcmp(data, text, n) || data[n] != '\0')
        test_fail("%s: file_read_all gave %zu bytes, expected %zu", path, len, n);
    free(data);
}

// file_read_all on a FIFO fed by a child process: no size known before the end.
static void check_fifo(const char *text, size_t n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/fifo", dir);
    if (mkfifo(path, 0600)) test_fail("mkfifo %s", path);
    pid_t pid = fork();
    if (pid < 0) test_fail("fork");
    if (pid == 0) {
        FILE *f = fopen(path, "wb");
        _exit(!f || fwrite(text, 1, n, f) != n || fclose(f) != 0);
    }
    check_read_all(path, text, n);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
        test_fail("the FIFO writer failed");
}

int main(void) {
    if (!mkdtemp(dir)) test_fail("mkdtemp");
    size_t n;
    char *text = make_text(&n);
    static const size_t sizes[] = {0, 1, 17, 4095, 4096, 4097, 65535, 65536, 65537, 262144, 262145};
    char path[4200];
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes + 1; i++) {
        size_t k = i < sizeof sizes / sizeof *sizes ? sizes[i] : n;
        snprintf(path, sizeof path, "%s/text_%zu.txt", dir, k);
        write_file(path, text, k);
        check_read_all(path, text, k);
        check_lines(path, text, k);
    }
    // The whole text gzip-compressed: the reader decompresses it in reads sized by the
    // compressed file.
    char cmd[8600];
    snprintf(cmd, sizeof cmd, "gzip -c %s/text_%zu.txt > %s/text.txt.gz", dir, n, dir);
    if (system(cmd) != 0) test_fail("%s failed", cmd);
    snprintf(path, sizeof path, "%s/text.txt.gz", dir);
    check_lines(path, text, n);
    check_fifo(text, 300000);
    free(text);
    dir_remove_recursive(dir);
    printf("file_read_all and line_reader: %zu bytes in %zu size classes, gzip and a FIFO: ok\n", n,
           sizeof sizes / sizeof *sizes + 1);
    return 0;
}
