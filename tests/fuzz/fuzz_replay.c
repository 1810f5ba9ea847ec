// Replays fuzz inputs through a harness without libFuzzer, so the regression inputs
// (tests/fuzz/regress/) and the seed corpora run in the normal gcc build and its ASan+UBSan
// build too: `fuzz_<parser>_replay FILE_OR_DIR...` calls LLVMFuzzerTestOneInput on every file
// (directories: every regular file in them, sorted by name). A crash or a failed invariant
// aborts; finding no input at all is an error, so a broken path cannot pass as a clean run.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    for (int i = 1; i < argc; i++) {
        struct stat st;
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
