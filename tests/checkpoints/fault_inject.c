// Fault injection for the checkpoint tests, loaded into medtune with LD_PRELOAD so that the
// production code carries no test hooks. It interposes a few libc functions and is steered
// by the environment:
//
//   MEDTUNE_FAULT_CRASH_AT=K     the K-th (1-based) rename, renameat, renameat2, unlink,
//                                unlinkat, rmdir or remove of a path under a `checkpoints/`
//                                directory does not happen: the process exits at once with
//                                status 86 instead, as after kill -9 (no cleanup, no atexit).
//                                Stepping K through 1, 2, 3 ... crashes the program between
//                                every pair of consecutive changes to the checkpoint tree.
//   MEDTUNE_FAULT_NO_EXCHANGE=1  renameat2(RENAME_EXCHANGE) fails with EINVAL, as on a
//                                filesystem that cannot exchange two directories.
//   MEDTUNE_FAULT_OOM_AFTER=PREFIX  after readdir() returns an entry whose name starts with
//                                PREFIX, the next strdup() or realloc() fails with ENOMEM
//                                (unless readdir() or closedir() is called first), i.e. the
//                                allocations of a listing loop that keeps that entry fail.
//   MEDTUNE_FAULT_OOM_CALL=strdup|realloc   which of the two fails (default: both).
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CRASH_STATUS 86

static long crash_at = -1, fs_ops;
static int no_exchange;
static const char *oom_after, *oom_call;
static int oom_armed;

__attribute__((constructor)) static void fault_init(void) {
    const char *s = getenv("MEDTUNE_FAULT_CRASH_AT");
    if (s && *s) crash_at = atol(s);
    s = getenv("MEDTUNE_FAULT_NO_EXCHANGE");
    no_exchange = s && !strcmp(s, "1");
    s = getenv("MEDTUNE_FAULT_OOM_AFTER");
    oom_after = s && *s ? s : NULL;
    s = getenv("MEDTUNE_FAULT_OOM_CALL");
    oom_call = s && *s ? s : NULL;
}

static void *next_fn(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        static const char msg[] = "fault_inject: symbol not found\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(99);
    }
    return f;
}

// Counts one change to the checkpoint tree and crashes when it is the chosen one.
static void fs_op(const char *path) {
    if (crash_at < 0 || !path || !strstr(path, "checkpoints/")) return;
    if (++fs_ops == crash_at) _exit(CRASH_STATUS);
}

int rename(const char *from, const char *to) {
    static int (*real)(const char *, const char *);
    if (!real) real = (int (*)(const char *, const char *))next_fn("rename");
    fs_op(to);
    return real(from, to);
}

int renameat(int fd1, const char *from, int fd2, const char *to) {
    static int (*real)(int, const char *, int, const char *);
    if (!real) real = (int (*)(int, const char *, int, const char *))next_fn("renameat");
    fs_op(to);
    return real(fd1, from, fd2, to);
}

int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned flags) {
    static int (*real)(int, const char *, int, const char *, unsigned);
    if (!real) real = (int (*)(int, const char *, int, const char *, unsigned))next_fn("renameat2");
    if (no_exchange && (flags & RENAME_EXCHANGE)) {
        errno = EINVAL;
        return -1;
    }
    fs_op(to);
    return real(fd1, from, fd2, to, flags);
}

int unlink(const char *path) {
    static int (*real)(const char *);
    if (!real) real = (int (*)(const char *))next_fn("unlink");
    fs_op(path);
    return real(path);
}

int unlinkat(int fd, const char *path, int flags) {
    static int (*real)(int, const char *, int);
    if (!real) real = (int (*)(int, const char *, int))next_fn("unlinkat");
    fs_op(path);
    return real(fd, path, flags);
}

int rmdir(const char *path) {
    static int (*real)(const char *);
    if (!real) real = (int (*)(const char *))next_fn("rmdir");
    fs_op(path);
    return real(path);
}

int remove(const char *path) {
    static int (*real)(const char *);
    if (!real) real = (int (*)(const char *))next_fn("remove");
    fs_op(path);
    return real(path);
}

struct dirent *readdir(DIR *d) {
    static struct dirent *(*real)(DIR *);
    if (!real) real = (struct dirent * (*)(DIR *)) next_fn("readdir");
    struct dirent *e = real(d);
    oom_armed = oom_after && e && !strncmp(e->d_name, oom_after, strlen(oom_after));
    return e;
}

int closedir(DIR *d) {
    static int (*real)(DIR *);
    if (!real) real = (int (*)(DIR *))next_fn("closedir");
    oom_armed = 0;
    return real(d);
}

static int oom_now(const char *call) {
    if (!oom_armed || (oom_call && strcmp(oom_call, call))) return 0;
    oom_armed = 0;
    errno = ENOMEM;
    return 1;
}

char *strdup(const char *s) {
    static char *(*real)(const char *);
    if (!real) real = (char *(*)(const char *))next_fn("strdup");
    return oom_now("strdup") ? NULL : real(s);
}

void *realloc(void *p, size_t n) {
    static void *(*real)(void *, size_t);
    if (!real) real = (void *(*)(void *, size_t))next_fn("realloc");
    return oom_now("realloc") ? NULL : real(p, n);
}
