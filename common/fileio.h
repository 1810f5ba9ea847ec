// File helpers: whole-file reads, read-only mappings, and atomic writes
// (temporary file in the same directory, fsync, rename, fsync of the directory).
#ifndef MEDTUNE_COMMON_FILEIO_H
#define MEDTUNE_COMMON_FILEIO_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *data;
    size_t size;
    int fd;
} mapped_file;

// Maps `path` read-only. On failure returns -1 with "<path>: <reason>".
int mapped_file_open(mapped_file *mf, const char *path);
void mapped_file_close(mapped_file *mf);

// Reads a whole file into a NUL-terminated malloc'd buffer.
int file_read_all(const char *path, char **out, size_t *len);

// Writes `len` bytes to `path` atomically: data is either the old file or the complete new one.
int file_write_atomic(const char *path, const void *data, size_t len);

// Streaming atomic writer for large outputs: open, write chunks, commit (fsync + rename) or abort.
typedef struct {
    char path[4096];
    char tmp_path[4096];
    int fd;
} atomic_writer;

int atomic_writer_open(atomic_writer *w, const char *path);
int atomic_writer_write(atomic_writer *w, const void *data, size_t len);
int atomic_writer_commit(atomic_writer *w);
void atomic_writer_abort(atomic_writer *w);

// fsyncs a directory so a rename inside it is durable.
int dir_fsync(const char *dir);

// Swaps two existing directories in one atomic rename (renameat2 RENAME_EXCHANGE). Returns 0,
// 1 when the filesystem cannot exchange (EINVAL, ENOSYS, ENOTSUP: some network and FUSE
// filesystems), or -1 with the error set.
int dir_exchange(const char *a, const char *b);

// Directory outputs (a shard directory, a PEFT export, a merged model) are built under a
// temporary name and published whole, so a crash or a full disk never leaves a directory a
// later command takes for complete, nor damages the one already there:
//   dir_partial_begin  `<final_dir>.partial` (trailing slashes of final_dir ignored), emptied of
//                      what a killed earlier run left there, then created; its path into out;
//   dir_publish        fsyncs `partial` and moves it to `final_dir` in one rename: exchanged
//                      atomically with an existing final_dir (renameat2 RENAME_EXCHANGE), whose
//                      old contents are then removed; fsyncs the parent directory.
// The files inside `partial` must already be durable (atomic writes are).
int dir_partial_begin(char *out, size_t n, const char *final_dir);
int dir_publish(const char *partial, const char *final_dir);
// mkdir -p; succeeds if it already exists.
int dir_create(const char *path);
int path_is_dir(const char *path);
// True when `path` is a directory with no entries (an output directory that may be used).
int dir_is_empty(const char *path);
int path_exists(const char *path);
// rm -rf; succeeds when the path does not exist.
int dir_remove_recursive(const char *path);
// Joins into `out` (size n) as "a/b"; returns -1 with an error if it does not fit.
int path_join(char *out, size_t n, const char *a, const char *b);

#endif
