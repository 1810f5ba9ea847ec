// Replays fuzz inputs through a harness without libFuzzer, so the regression inputs
// (tests/fuzz/regress/) and the seed corpora run in the normal gcc build and its ASan+UBSan
// build too: `fuzz_<parser>_replay FILE_OR_DIR...` calls LLVMFuzzerTestOneInput on every file
// (directories: every regular file in them, sorted by name). A crash or a failed invariant
// aborts; finding no input at all is an error, so a broken path cannot pass as a clean run.
// In sanitizer builds an allocation above -malloc_limit_mb=N (default 2048, as libFuzzer's
// default RSS limit) aborts as libFuzzer's out-of-memory check does, so an input that asks
// for gigabytes fails its replay even where such a malloc would succeed.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLAY_ASAN 1
#endif
#elif defined(__SANITIZE_ADDRESS__)
#define REPLAY_ASAN 1
#endif

#ifdef REPLAY_ASAN
// Declared here: gcc 12 ships the function in libasan but not in its headers.
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));

static size_t malloc_limit = (size_t)2048 << 20;

static void malloc_hook(const volatile void *ptr, size_t size) {
    (void)ptr;
    if (size > malloc_limit) {
        fprintf(stderr, "fuzz replay: out-of-memory (malloc(%zu)), over -malloc_limit_mb\n", size);
        abort();
    }
}

static void free_hook(const volatile void *ptr) { (void)ptr; }  // the runtime wants both

static void limit_malloc(const char *mb) {
    malloc_limit = (size_t)strtoull(mb, NULL, 10) << 20;
    if (!__sanitizer_install_malloc_and_free_hooks(malloc_hook, free_hook)) {
        fprintf(stderr, "fuzz replay: cannot install the malloc limit\n");
        exit(1);
    }
}
#else
static void limit_malloc(const char *mb) { (void)mb; }
#endif

static int replay_file(const char *path) {
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len) != 0) {
        fprintf(stderr, "fuzz replay: cannot read %s\n", path);
        exit(1);
    }
    LLVMFuzzerTestOneInput((const uint8_t *)text, len);
    free(text);
    return 1;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (n == cap && !(names = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names))) exit(1);
        if (!(names[n++] = strdup(e->d_name))) exit(1);
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        if (path_join(path, sizeof path, dir, names[i]) == 0 && stat(path, &st) == 0 &&
            S_ISREG(st.st_mode))
            count += replay_file(path);
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv) {
    int count = 0;
    const char *limit = "2048";
    for (int i = 1; i < argc; i++)
        if (!strncmp(argv[i], "-malloc_limit_mb=", 17)) limit = argv[i] + 17;
    limit_malloc(limit);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (argv[i][0] == '-') continue;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "fuzz replay: %s: no such file or directory\n", argv[i]);
            return 1;
        }
        count += S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i]);
    }
    if (count == 0) {
        fprintf(stderr, "fuzz replay: no input found in the arguments\n");
        return 1;
    }
    printf("fuzz replay: %d inputs, no crash\n", count);
    return 0;
}
