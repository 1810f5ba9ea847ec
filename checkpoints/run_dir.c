#include "checkpoints/run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoints/peft.h"
#include "common/error.h"
#include "common/fileio.h"
#include "common/strbuf.h"

#define STEP_PREFIX "step_"

static int is_step_dir_name(const char *name, int want_tmp) {
    size_t pl = strlen(STEP_PREFIX), n = strlen(name);
    if (strncmp(name, STEP_PREFIX, pl) || n <= pl) return 0;
    size_t digits = strspn(name + pl, "0123456789");
    if (digits == 0) return 0;
    const char *rest = name + pl + digits;
    return want_tmp ? !strcmp(rest, ".tmp") : *rest == '\0';
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

// Sorted names of complete (or, with want_tmp, partial) checkpoint directories.
static int list_step_dirs(const char *dir, int want_tmp, char ***names, int *n) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : err_set("%s: cannot list: %s", dir, strerror(errno));
    struct dirent *e;
    size_t cap = 0;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (!is_step_dir_name(e->d_name, want_tmp)) continue;
        char **grown = vec_grow(*names, &cap, (size_t)*n + 1, sizeof *grown);
        if (grown) *names = grown;
        if (!grown || !((*names)[*n] = strdup(e->d_name))) rc = err_set("%s: out of memory", dir);
        else (*n)++;
    }
    closedir(d);
    if (rc) {
        free_names(*names, *n);
        *names = NULL;
        *n = 0;
        return -1;
    }
    if (*n) qsort(*names, (size_t)*n, sizeof(char *), cmp_str);
    return 0;
}

int checkpoint_clean_partial(const char *out_dir) {
    char dir[4096];
    if (path_join(dir, sizeof dir, out_dir, "checkpoints")) return -1;
    char **names;
    int n, rc = list_step_dirs(dir, 1, &names, &n);
    for (int i = 0; i < n && !rc; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        rc = dir_remove_recursive(p);
    }
    free_names(names, n);
    return rc;
}

// The step directory name held by OUT/checkpoints/<which> into name[n]; "" when the file is
// absent.
static int pointer_read(const char *dir, const char *which, char *name, size_t n) {
    char file[4400];
    snprintf(file, sizeof file, "%s/%s", dir, which);
    name[0] = '\0';
    if (!path_exists(file)) return 0;
    char *text;
    if (file_read_all(file, &text, NULL)) return -1;
    text[strcspn(text, "\r\n")] = '\0';
    int ok = is_step_dir_name(text, 0) && strlen(text) < n;
    if (ok) memcpy(name, text, strlen(text) + 1);
    free(text);
    return ok ? 0 : err_set("%s: does not name a checkpoint directory", file);
}

// Removes the oldest checkpoints beyond keep_last, except the one just written and the best.
static int prune(const char *dir, const char *keep_name, int keep_last) {
    char **names, best[64];
    int n;
    if (pointer_read(dir, "best", best, sizeof best) || list_step_dirs(dir, 0, &names, &n))
        return -1;
    int rc = 0;
    for (int i = 0; i + keep_last < n && !rc; i++) {
        if (!strcmp(names[i], keep_name) || !strcmp(names[i], best)) continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        rc = dir_remove_recursive(p);
    }
    free_names(names, n);
    return rc;
}

// Puts the complete directory `tmp` at `final`. `final` already exists when a resumed run
// saves the step it resumed from (a finished run resumed, or a stop before the first step),
// and `latest` may name it: it must never be missing or partial, even for an instant. So the
// two directories are exchanged in one atomic rename (RENAME_EXCHANGE) and the old copy, now
// at `tmp`, is removed; a crash before that removal leaves a step_N.tmp that the next run
// cleans up. A filesystem that cannot exchange (EINVAL, ENOSYS, ENOTSUP: some network and
// FUSE filesystems) keeps the existing checkpoint and drops the new copy: both hold the same
// training state, because no optimizer step ran between them.
static int dir_move_into_place(const char *tmp, const char *final) {
    if (!path_exists(final)) {
        if (rename(tmp, final) != 0) return err_set("%s: rename failed: %s", final, strerror(errno));
        return 0;
    }
    if (dir_exchange(tmp, final) < 0) return -1;
    return dir_remove_recursive(tmp);
}

int checkpoint_save(const char *out_dir, const train_state *s, const lora_adapter *a,
                    const adamw_state *opt, const char *base_model, int keep_last, int is_best) {
    char dir[4096], name[64], tmp[4400], final[4400], file[4500];
    if (path_join(dir, sizeof dir, out_dir, "checkpoints") || dir_create(dir)) return -1;
    snprintf(name, sizeof name, STEP_PREFIX "%08lld", (long long)s->step);
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    snprintf(final, sizeof final, "%s/%s", dir, name);
    if (dir_remove_recursive(tmp) || dir_create(tmp)) return -1;
    snprintf(file, sizeof file, "%s/state.h5", tmp);
    int rc = train_state_write(file, s, a, opt);
    snprintf(file, sizeof file, "%s/adapter", tmp);
    if (!rc) rc = peft_adapter_write(file, a, base_model);
    if (!rc) rc = dir_fsync(file) || dir_fsync(tmp);
    if (!rc) rc = dir_move_into_place(tmp, final);
    if (!rc) rc = dir_fsync(dir);
    if (rc) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", err_msg());
        dir_remove_recursive(tmp);
        return err_set("%s", msg);
    }
    char latest[4400], line[80];
    snprintf(latest, sizeof latest, "%s/latest", dir);
    snprintf(line, sizeof line, "%s\n", name);
    if (file_write_atomic(latest, line, strlen(line))) return -1;
    if (is_best) {
        char best[4400];
        snprintf(best, sizeof best, "%s/best", dir);
        if (file_write_atomic(best, line, strlen(line))) return -1;
    }
    return prune(dir, name, keep_last);
}

static int checkpoint_named(const char *out_dir, const char *which, const char *missing,
                            char *path, size_t n) {
    char dir[4096], name[64];
    if (path_join(dir, sizeof dir, out_dir, "checkpoints") ||
        pointer_read(dir, which, name, sizeof name))
        return -1;
    if (!name[0]) return err_set("%s: %s (checkpoints/%s is missing)", out_dir, missing, which);
    if (snprintf(path, n, "%s/%s", dir, name) >= (int)n)
        return err_set("%s/%s: path too long", dir, which);
    if (!path_is_dir(path))
        return err_set("%s/%s: names %s, which does not exist", dir, which, path);
    return 0;
}

int checkpoint_latest(const char *out_dir, char *path, size_t n) {
    return checkpoint_named(out_dir, "latest", "no checkpoint to resume from", path, n);
}

int checkpoint_best(const char *out_dir, char *path, size_t n) {
    return checkpoint_named(out_dir, "best", "no best checkpoint: the run has no best.metric",
                            path, n);
}

int run_write_final_adapter(const char *out_dir, const lora_adapter *a, const char *base_model) {
    char partial[4400], final[4400];
    snprintf(final, sizeof final, "%s/adapter", out_dir);
    if (dir_partial_begin(partial, sizeof partial, final)) return -1;
    if (!peft_adapter_write(partial, a, base_model) && !dir_publish(partial, final)) return 0;
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", err_msg());
    dir_remove_recursive(partial);
    return err_set("%s", msg);
}
