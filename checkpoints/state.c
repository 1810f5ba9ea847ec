#include "checkpoints/state.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/state_checksum.h"
#include "common/error.h"

// HDF5 prints its own error stacks unless told not to; medtune reports one line instead.
// A failed H5Fclose (disk full while flushing) leaves the file in HDF5's id table, and
// HDF5's atexit clean-up then crashes closing it: the process exits on its own instead.
static void h5_quiet(void) {
    H5dont_atexit();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void train_state_free(train_state *s) {
    free(s->config_json);
    free(s->permutation);
    free(s->replay_permutation);
    memset(s, 0, sizeof *s);
}

static int attr_write(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                      const void *value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = attr >= 0 ? H5Awrite(attr, mem_type, value) : -1;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    return rc < 0 ? -1 : 0;
}

static int attr_write_i64(hid_t loc, const char *name, int64_t v) {
    return attr_write(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

static int attr_write_u64(hid_t loc, const char *name, uint64_t v) {
    return attr_write(loc, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}

static int attr_write_str(hid_t loc, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    int rc = attr_write(loc, name, t, t, v);
    H5Tclose(t);
    return rc;
}

static int dataset_write(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, int rank,
                         const hsize_t *dims, const void *data) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds >= 0 ? H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    return rc < 0 ? -1 : 0;
}

// Calls fn(name, data, rows, cols) for every LoRA tensor of `a` laid over `base`.
typedef int (*tensor_fn)(void *ctx, const char *name, float *data, hsize_t rows, hsize_t cols);

static int for_each_tensor(const lora_adapter *a, float *base, tensor_fn fn, void *ctx) {
    for (int l = 0; l < a->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!lora_enabled(a, t)) continue;
            for (int is_b = 0; is_b < 2; is_b++) {
                char name[160];
                lora_tensor_name(name, sizeof name, l, t, is_b);
                const lora_slot *s = &a->slots[t];
                size_t off = l * a->layer_stride + (is_b ? s->b_off : s->a_off);
                hsize_t rows = (hsize_t)(is_b ? s->out : a->cfg.r);
                hsize_t cols = (hsize_t)(is_b ? a->cfg.r : s->in);
                if (fn(ctx, name, base + off, rows, cols)) return -1;
            }
        }
    return 0;
}

static int write_tensor(void *ctx, const char *name, float *data, hsize_t rows, hsize_t cols) {
    hsize_t dims[2] = {rows, cols};
    return dataset_write(*(hid_t *)ctx, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, data);
}

static int write_u64_array(hid_t loc, const char *name, const uint64_t *v, int64_t n) {
    hsize_t dims[1] = {(hsize_t)n};
    return dataset_write(loc, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, dims, v);
}

static int write_contents(hid_t f, const train_state *s, const lora_adapter *a,
                          const adamw_state *opt) {
    hid_t g_lora = H5Gcreate2(f, "lora", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g_adam = H5Gcreate2(f, "adam", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g_m = g_adam >= 0 ? H5Gcreate2(g_adam, "m", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    hid_t g_v = g_adam >= 0 ? H5Gcreate2(g_adam, "v", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    hid_t g_data = H5Gcreate2(f, "data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (g_lora < 0 || g_m < 0 || g_v < 0 || g_data < 0) ? -1 : 0;
    if (!rc) rc = for_each_tensor(a, a->params, write_tensor, &g_lora);
    if (!rc) rc = for_each_tensor(a, opt->m, write_tensor, &g_m);
    if (!rc) rc = for_each_tensor(a, opt->v, write_tensor, &g_v);
    if (!rc) rc = write_u64_array(g_data, "permutation", s->permutation, s->n_permutation);
    if (!rc)
        rc = write_u64_array(g_data, "replay_permutation", s->replay_permutation,
                             s->n_replay_permutation);
    if (!rc)
        rc = attr_write_i64(f, "format_version", TRAIN_STATE_FORMAT_VERSION) ||
             attr_write_str(f, "medtune_version", MEDTUNE_VERSION) ||
             attr_write_i64(f, "threads", s->threads) ||
             attr_write_i64(f, "step", s->step) ||
             attr_write_i64(f, "tokens_seen", s->tokens_seen) ||
             attr_write_i64(f, "adam_step", opt->step) ||
             attr_write(f, "elapsed_s", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &s->elapsed_s) ||
             attr_write_i64(f, "cursor_epoch", s->cursor.epoch) ||
             attr_write_i64(f, "cursor_index", s->cursor.index) ||
             attr_write_i64(f, "cursor_replay_epoch", s->cursor.replay_epoch) ||
             attr_write_i64(f, "cursor_replay_index", s->cursor.replay_index) ||
             attr_write_i64(f, "cursor_sample", s->cursor.sample) ||
             attr_write_u64(f, "rng_seed", s->rng_seed) ||
             attr_write_u64(f, "dropout_counter", s->dropout_counter) ||
             attr_write_str(f, "config", s->config_json ? s->config_json : "{}") ||
             attr_write_str(f, "model_fingerprint", s->model_fingerprint) ||
             attr_write_str(f, "data_fingerprint", s->data_fingerprint) ||
             attr_write_i64(f, "best_step", s->best_step) ||
             attr_write(f, "best_score", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &s->best_score) ||
             attr_write_i64(f, "evals_since_best", s->evals_since_best);
    if (g_v >= 0) H5Gclose(g_v);
    if (g_m >= 0) H5Gclose(g_m);
    if (g_adam >= 0) H5Gclose(g_adam);
    if (g_lora >= 0) H5Gclose(g_lora);
    if (g_data >= 0) H5Gclose(g_data);
    return rc;
}

int train_state_write(const char *path, const train_state *s, const lora_adapter *a,
                      const adamw_state *opt) {
    h5_quiet();
    // HDF5 places its data after the user block, which then receives the checksum.
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    hid_t f = fcpl >= 0 && H5Pset_userblock(fcpl, STATE_CHECKSUM_BLOCK) >= 0
                  ? H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT)
                  : -1;
    if (fcpl >= 0) H5Pclose(fcpl);
    if (f < 0) return err_set("%s: cannot create HDF5 file: %s", path, strerror(errno));
    int rc = write_contents(f, s, a, opt);
    if (H5Fclose(f) < 0) rc = -1;
    if (rc) return err_set("%s: writing the training state failed (disk full?)", path);
    return state_checksum_write(path);
}

static int attr_read(hid_t f, const char *path, const char *name, hid_t mem_type, void *out) {
    hid_t attr = H5Aexists(f, name) > 0 ? H5Aopen(f, name, H5P_DEFAULT) : -1;
    if (attr < 0) return err_set("%s: attribute %s missing", path, name);
    herr_t rc = H5Aread(attr, mem_type, out);
    H5Aclose(attr);
    return rc < 0 ? err_set("%s: attribute %s unreadable", path, name) : 0;
}

static int attr_read_str(hid_t f, const char *path, const char *name, char **out) {
    hid_t attr = H5Aexists(f, name) > 0 ? H5Aopen(f, name, H5P_DEFAULT) : -1;
    if (attr < 0) return err_set("%s: attribute %s missing", path, name);
    hid_t t = H5Aget_type(attr);
    int rc = -1;
    if (H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t)) {
        size_t n = H5Tget_size(t);
        *out = calloc(n + 1, 1);
        if (!*out) rc = -2;
        else if (H5Aread(attr, t, *out) >= 0) rc = 0;
    }
    H5Tclose(t);
    H5Aclose(attr);
    if (rc == -2) return err_set("%s: attribute %s: out of memory", path, name);
    return rc ? err_set("%s: attribute %s is not a readable string", path, name) : 0;
}

static int read_u64_array(hid_t f, const char *path, const char *name, uint64_t **out,
                          int64_t *n) {
    hid_t ds = H5Lexists(f, name, H5P_DEFAULT) > 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    if (ds < 0) return err_set("%s: dataset %s missing", path, name);
    hid_t space = H5Dget_space(ds);
    hsize_t dims[1] = {0};
    int rank = H5Sget_simple_extent_ndims(space);
    int rc = -1;
    if (rank == 1 && H5Sget_simple_extent_dims(space, dims, NULL) == 1) {
        *n = (int64_t)dims[0];
        *out = dims[0] <= SIZE_MAX / sizeof(uint64_t)
                   ? malloc((dims[0] ? dims[0] : 1) * sizeof(uint64_t))
                   : NULL;
        if (!*out)
            rc = -2;
        else if (dims[0] == 0 ||
                 H5Dread(ds, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) >= 0)
            rc = 0;
    }
    H5Sclose(space);
    H5Dclose(ds);
    if (rc == -2) return err_set("%s: dataset %s: out of memory", path, name);
    return rc ? err_set("%s: dataset %s is not a readable uint64 vector", path, name) : 0;
}

int train_state_read_meta(const char *path, train_state *s) {
    memset(s, 0, sizeof *s);
    if (state_checksum_verify(path, &s->checksummed)) return -1;
    h5_quiet();
    if (H5Fis_hdf5(path) <= 0)
        return err_set("%s: not a readable HDF5 file (incomplete or corrupt checkpoint)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return err_set("%s: cannot open HDF5 file", path);
    char *model_fp = NULL, *data_fp = NULL, *writer = NULL;
    int rc = attr_read(f, path, "format_version", H5T_NATIVE_INT64, &s->format_version);
    if (!rc && s->format_version > TRAIN_STATE_FORMAT_VERSION) {
        // Only to name the writer in the message: a newer format need not have it.
        if (H5Aexists(f, "medtune_version") > 0 &&
            attr_read_str(f, path, "medtune_version", &writer)) {
            free(writer);
            writer = NULL;
        }
        rc = err_set("%s: state format %lld (written by medtune %s) is newer than this medtune "
                     "(%s) reads (up to %d): use that medtune or a newer one",
                     path, (long long)s->format_version, writer ? writer : "?", MEDTUNE_VERSION,
                     TRAIN_STATE_FORMAT_VERSION);
    } else if (!rc && s->format_version < 1) {
        rc = err_set("%s: format_version %lld is not a medtune state format", path,
                     (long long)s->format_version);
    }
    if (!rc && s->format_version >= 2)
        rc = attr_read_str(f, path, "medtune_version", &writer) ||
             attr_read(f, path, "threads", H5T_NATIVE_INT64, &s->threads);
    if (!rc)
        rc = attr_read(f, path, "step", H5T_NATIVE_INT64, &s->step) ||
             attr_read(f, path, "tokens_seen", H5T_NATIVE_INT64, &s->tokens_seen) ||
             attr_read(f, path, "elapsed_s", H5T_NATIVE_DOUBLE, &s->elapsed_s) ||
             attr_read(f, path, "cursor_epoch", H5T_NATIVE_INT64, &s->cursor.epoch) ||
             attr_read(f, path, "cursor_index", H5T_NATIVE_INT64, &s->cursor.index) ||
             attr_read(f, path, "cursor_replay_epoch", H5T_NATIVE_INT64,
                       &s->cursor.replay_epoch) ||
             attr_read(f, path, "cursor_replay_index", H5T_NATIVE_INT64,
                       &s->cursor.replay_index) ||
             attr_read(f, path, "cursor_sample", H5T_NATIVE_INT64, &s->cursor.sample) ||
             attr_read(f, path, "rng_seed", H5T_NATIVE_UINT64, &s->rng_seed) ||
             attr_read(f, path, "dropout_counter", H5T_NATIVE_UINT64, &s->dropout_counter) ||
             attr_read_str(f, path, "config", &s->config_json) ||
             attr_read_str(f, path, "model_fingerprint", &model_fp) ||
             attr_read_str(f, path, "data_fingerprint", &data_fp) ||
             read_u64_array(f, path, "data/permutation", &s->permutation, &s->n_permutation) ||
             read_u64_array(f, path, "data/replay_permutation", &s->replay_permutation,
                            &s->n_replay_permutation);
    // Written since best-checkpoint tracking came, within format 2: absent means no best yet.
    if (!rc && H5Aexists(f, "best_step") > 0)
        rc = attr_read(f, path, "best_step", H5T_NATIVE_INT64, &s->best_step) ||
             attr_read(f, path, "best_score", H5T_NATIVE_DOUBLE, &s->best_score) ||
             attr_read(f, path, "evals_since_best", H5T_NATIVE_INT64, &s->evals_since_best);
    if (model_fp) snprintf(s->model_fingerprint, sizeof s->model_fingerprint, "%s", model_fp);
    if (data_fp) snprintf(s->data_fingerprint, sizeof s->data_fingerprint, "%s", data_fp);
    if (writer) snprintf(s->medtune_version, sizeof s->medtune_version, "%s", writer);
    free(model_fp);
    free(data_fp);
    free(writer);
    H5Fclose(f);
    if (rc) train_state_free(s);
    return rc ? -1 : 0;
}

void train_state_warn_unchecked(const train_state *s, const char *path) {
    if (!s->checksummed)
        fprintf(stderr, "medtune: warning: %s: state format %lld has no checksum (written before "
                        "format 3), read without verifying its integrity\n",
                path, (long long)s->format_version);
}

int train_state_check_resume(const train_state *s, const char *ckpt) {
    if (s->format_version < 2)
        return err_set("cannot resume %s: it is in state format %lld, whose model fingerprint "
                       "covers only a sample of the base weights; this medtune (%s) compares a "
                       "hash of every weight byte, so it cannot verify the base model. Start a new "
                       "run, with init_adapter set to %s/adapter to keep the trained LoRA weights",
                       ckpt, (long long)s->format_version, MEDTUNE_VERSION, ckpt);
    return 0;
}

typedef struct {
    hid_t group;
    const char *path;
    const char *group_name;
} read_ctx;

static int read_tensor(void *ctx, const char *name, float *data, hsize_t rows, hsize_t cols) {
    read_ctx *c = ctx;
    hid_t ds = H5Lexists(c->group, name, H5P_DEFAULT) > 0 ? H5Dopen2(c->group, name, H5P_DEFAULT)
                                                           : -1;
    if (ds < 0) return err_set("%s: /%s/%s: missing", c->path, c->group_name, name);
    hid_t space = H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    int rank = H5Sget_simple_extent_ndims(space);
    int shaped = rank == 2 && H5Sget_simple_extent_dims(space, dims, NULL) == 2 &&
                 dims[0] == rows && dims[1] == cols;
    int read = shaped && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    H5Sclose(space);
    H5Dclose(ds);
    // The shape is checked first; a dataset of the right shape can still fail to read (a
    // corrupt chunk, a type that does not convert to float): that is not a shape problem.
    if (rank < 0)
        return err_set("%s: /%s/%s: dataspace unreadable (corrupt)", c->path, c->group_name, name);
    if (!shaped && rank != 2)
        return err_set("%s: /%s/%s: rank %d, expected a [%llu, %llu] matrix", c->path,
                       c->group_name, name, rank, (unsigned long long)rows,
                       (unsigned long long)cols);
    if (!shaped)
        return err_set("%s: /%s/%s: shape [%llu, %llu], expected [%llu, %llu]", c->path,
                       c->group_name, name, (unsigned long long)dims[0],
                       (unsigned long long)dims[1], (unsigned long long)rows,
                       (unsigned long long)cols);
    if (!read)
        return err_set("%s: /%s/%s: data unreadable as float32 (corrupt, or not numbers)",
                       c->path, c->group_name, name);
    return 0;
}

int train_state_read_tensors(const char *path, lora_adapter *a, adamw_state *opt) {
    // Checked again: the file is opened anew, and this entry point may be the only one called.
    int checksummed;
    if (state_checksum_verify(path, &checksummed)) return -1;
    h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return err_set("%s: cannot open HDF5 file", path);
    const char *groups[3] = {"lora", "adam/m", "adam/v"};
    float *dst[3] = {a->params, opt->m, opt->v};
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        hid_t g = H5Lexists(f, i ? "adam" : "lora", H5P_DEFAULT) > 0
                      ? H5Gopen2(f, groups[i], H5P_DEFAULT)
                      : -1;
        if (g < 0) {
            rc = err_set("%s: group /%s missing", path, groups[i]);
            break;
        }
        read_ctx ctx = {g, path, groups[i]};
        rc = for_each_tensor(a, dst[i], read_tensor, &ctx);
        H5Gclose(g);
    }
    if (!rc) rc = attr_read(f, path, "adam_step", H5T_NATIVE_INT64, &opt->step);
    H5Fclose(f);
    return rc;
}
