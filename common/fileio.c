#include "common/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/strbuf.h"

int mapped_file_open(mapped_file *mf, const char *path) {
    memset(mf, 0, sizeof *mf);
    mf->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return err_set("%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return err_set("%s: not a regular file", path);
    }
    mf->size = (size_t)st.st_size;
    mf->fd = fd;
    if (mf->size == 0) return 0;
    void *p = mmap(NULL, mf->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        close(fd);
        mf->fd = -1;
        return err_set("%s: cannot map: %s", path, strerror(errno));
    }
    mf->data = p;
    return 0;
}

void mapped_file_close(mapped_file *mf) {
    if (mf->data) munmap((void *)mf->data, mf->size);
    if (mf->fd >= 0) close(mf->fd);
    memset(mf, 0, sizeof *mf);
    mf->fd = -1;
}

int file_read_all(const char *path, char **out, size_t *len) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set("%s: cannot open: %s", path, strerror(errno));
    // A regular file is read into one buffer of its size (plus the NUL and a byte for the read
    // that sees the end): growing by 64 KiB steps made a small config or manifest cost a
    // 64 KiB allocation. Pipes, and files that grow while read, continue in 64 KiB steps.
    struct stat st;
    size_t first = 1 << 16;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) first = (size_t)st.st_size + 1;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 2 > cap) {
            char *nb = vec_grow(buf, &cap, n + (n ? 1 << 16 : first) + 1, 1);
            if (!nb) {
                free(buf);
                close(fd);
                return err_set("%s: out of memory", path);
            }
            buf = nb;
        }
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            free(buf);
            close(fd);
            return err_set("%s: read error", path);
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return 0;
}

int dir_fsync(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return err_set("%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0 && errno != EINVAL) return err_set("%s: fsync failed: %s", dir, strerror(errno));
    return 0;
}

int atomic_writer_open(atomic_writer *w, const char *path) {
    memset(w, 0, sizeof *w);
    w->fd = -1;
    if (snprintf(w->path, sizeof w->path, "%s", path) >= (int)sizeof w->path ||
        snprintf(w->tmp_path, sizeof w->tmp_path, "%s.tmp.%ld", path, (long)getpid()) >=
            (int)sizeof w->tmp_path)
        return err_set("%s: path too long", path);
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) return err_set("%s: cannot create: %s", w->tmp_path, strerror(errno));
    return 0;
}

int atomic_writer_write(atomic_writer *w, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t k = write(w->fd, p, len);
        if (k < 0) {
            if (errno == EINTR) continue;
            return err_set("%s: write failed: %s", w->path, strerror(errno));
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

void atomic_writer_abort(atomic_writer *w) {
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    if (w->tmp_path[0]) unlink(w->tmp_path);
}

int atomic_writer_commit(atomic_writer *w) {
    if (fsync(w->fd) != 0) {
        err_set("%s: fsync failed: %s", w->path, strerror(errno));
        atomic_writer_abort(w);
        return -1;
    }
    if (close(w->fd) != 0) {
        w->fd = -1;
        err_set("%s: close failed: %s", w->path, strerror(errno));
        atomic_writer_abort(w);
        return -1;
    }
    w->fd = -1;
    if (rename(w->tmp_path, w->path) != 0) {
        err_set("%s: rename failed: %s", w->path, strerror(errno));
        unlink(w->tmp_path);
        return -1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", w->path);
    return dir_fsync(dirname(dir));
}

int file_write_atomic(const char *path, const void *data, size_t len) {
    atomic_writer w;
    if (atomic_writer_open(&w, path) != 0) return -1;
    if (atomic_writer_write(&w, data, len) != 0) {
        atomic_writer_abort(&w);
        return -1;
    }
    return atomic_writer_commit(&w);
}

// "<path><suffix>", the trailing slashes of path dropped.
static int sibling_path(char *out, size_t n, const char *path, const char *suffix) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    if (snprintf(out, n, "%.*s%s", (int)len, path, suffix) < (int)n) return 0;
    out[0] = '\0';  // never leave a truncated path that a cleanup could remove
    return err_set("%s: path too long", path);
}

static int parent_fsync(const char *path) {
    char dir[4096];
    if (sibling_path(dir, sizeof dir, path, "")) return -1;
    return dir_fsync(dirname(dir));
}

int dir_partial_begin(char *out, size_t n, const char *final_dir) {
    if (sibling_path(out, n, final_dir, ".partial") || dir_remove_recursive(out)) return -1;
    return dir_create(out);
}

int dir_exchange(const char *a, const char *b) {
    if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0) return 0;
    if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) return 1;
    return err_set("%s: cannot exchange it with %s: %s", b, a, strerror(errno));
}

int dir_publish(const char *partial, const char *final_dir) {
    if (dir_fsync(partial)) return -1;
    if (!path_exists(final_dir)) {
        if (rename(partial, final_dir) != 0)
            return err_set("%s: cannot rename %s into place: %s", final_dir, partial,
                           strerror(errno));
        return parent_fsync(final_dir);
    }
    int rc = dir_exchange(partial, final_dir);
    if (rc < 0) return -1;
    if (rc == 0) return parent_fsync(final_dir) || dir_remove_recursive(partial) ? -1 : 0;
    // A file system without RENAME_EXCHANGE: two renames, and a crash between them leaves the
    // old contents in <final_dir>.old and no final_dir (never a partial one).
    char old[4096];
    if (sibling_path(old, sizeof old, final_dir, ".old") || dir_remove_recursive(old)) return -1;
    if (rename(final_dir, old) != 0)
        return err_set("%s: cannot rename it to %s: %s", final_dir, old, strerror(errno));
    if (rename(partial, final_dir) != 0)
        return err_set("%s: cannot rename %s into place: %s", final_dir, partial,
                       strerror(errno));
    return parent_fsync(final_dir) || dir_remove_recursive(old) ? -1 : 0;
}

int dir_create(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return err_set("%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return err_set("%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return err_set("%s: cannot create directory: %s", buf, strerror(errno));
    if (!path_is_dir(buf)) return err_set("%s: exists and is not a directory", buf);
    return 0;
}

int path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d))) empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

int path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int path_join(char *out, size_t n, const char *a, const char *b) {
    if (snprintf(out, n, "%s/%s", a, b) >= (int)n) return err_set("%s/%s: path too long", a, b);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

int dir_remove_recursive(const char *path) {
    if (!path_exists(path)) return 0;
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return err_set("%s: cannot remove: %s", path, strerror(errno));
    return 0;
}
