// libFuzzer harness: the state.h5 reader (checkpoints/state.h). The input is a state.h5 file.
// Since state format 3 the reader checks the file's checksum block (checkpoints/state_checksum.h)
// before libhdf5 opens it: a mutation of a checksummed seed stops there, with one error line,
// and only files whose checksum matches, or files without the block (formats 1 and 2), reach
// libhdf5. The seeds are format 3: the corrupt format-2 files on which libhdf5 itself crashes
// are known (tests/fuzz/known/state/) and not medtune's to fix.
// It is written to a scratch file rather than opened as an HDF5 file image in memory: the
// reader's entry points take a path (H5Fopen, as `train --resume` and `info` use them), and an
// image would need a second open path in the library that only the fuzzer used, so the
// harness would no longer test what users run.
// A file whose metadata reads is then read in full: the LoRA weights and AdamW moments for the
// adapter its own resolved config describes (on the shapes of the default tiny model, the one
// the seed checkpoints are trained on; rank capped at 16 so a mutated rank cannot ask for a
// huge adapter), as resume does after its compatibility checks.
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/state.h"
#include "common/error.h"
#include "common/fileio.h"
#include "model/model_load.h"
#include "model/tiny_model.h"
#include "tests/fuzz/fuzz_common.h"
#include "train/train_config.h"

// libFuzzer's leak check runs LeakSanitizer after each input. Debian's libhdf5 (1.10) keeps
// blocks that LSan reports as leaked after some corrupt files, though the gcc ASan build finds
// nothing at exit: leaks allocated inside libhdf5 are suppressed here, so LSan still reports
// every block that medtune itself allocates and loses.
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) { return "leak:libhdf5_serial.so\n"; }

// What this harness tests is medtune's reader, not libhdf5 (Debian's 1.10, not instrumented;
// ASan sees its memory only through the libc interceptors). Two behaviours of libhdf5 on
// corrupt files that still reach it are therefore not reported here; docs/fuzzing.md lists
// them as findings in libhdf5, with their inputs in tests/fuzz/known/state/:
// - it allocates sizes read from the file (its metadata cache): a corrupt size asks for
//   petabytes, malloc returns NULL as in a normal build and HDF5 reports an error;
// - it copies attribute messages past their heap block (memcpy from H5O__msg_iterate_real):
//   errors inside interceptors called from libhdf5 are suppressed. Every access made by
//   medtune's own (instrumented) code is still checked.
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
const char *__asan_default_suppressions(void);
const char *__asan_default_suppressions(void) { return "interceptor_via_lib:libhdf5_serial.so\n"; }

static model_config tiny_cfg;
static int have_cfg;

static void init(void) {
    char dir[4096], path[4096], *text;
    size_t len;
    tiny_model_options o;
    tiny_model_options_default(&o);
    fuzz_path(dir, sizeof dir, "tiny-default");
    if (tiny_model_write(dir, &o) != 0 || path_join(path, sizeof path, dir, "config.json") ||
        file_read_all(path, &text, &len) || model_config_from_hf_json(&tiny_cfg, text, len, path))
        fuzz_fail("tiny model: %s", err_msg());
    free(text);
    dir_remove_recursive(dir);  // only its config was needed
    have_cfg = 1;
}

static void read_tensors(const char *path, const train_state *s) {
    lora_config lc = {.r = 1, .alpha = 2, .targets = 1u << LORA_Q};
    cJSON *json = s->config_json ? cJSON_Parse(s->config_json) : NULL;
    train_config tc;
    if (json && train_config_from_json(&tc, json, "state.h5 config") == 0 && tc.lora.r <= 16) lc = tc.lora;
    cJSON_Delete(json);
    err_clear();
    lora_adapter a;
    adamw_state opt;
    adamw_config oc = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    if (lora_adapter_init(&a, &tiny_cfg, &lc) != 0) fuzz_fail("adapter: %s", err_msg());
    if (adamw_init(&opt, &oc, a.n_params) != 0) fuzz_fail("adamw: %s", err_msg());
    if (train_state_read_tensors(path, &a, &opt) != 0) fuzz_expect_error("train_state_read_tensors");
    adamw_free(&opt);
    lora_adapter_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!have_cfg) init();
    err_clear();
    char path[4096];
    fuzz_write(path, sizeof path, "state.h5", data, size);
    train_state s;
    if (train_state_read_meta(path, &s) != 0) {
        fuzz_expect_error("train_state_read_meta");
        return 0;
    }
    if (s.n_permutation < 0 || s.n_replay_permutation < 0 || (s.n_permutation && !s.permutation))
        fuzz_fail("permutation of %lld entries at %p", (long long)s.n_permutation, (void *)s.permutation);
    read_tensors(path, &s);
    train_state_free(&s);
    return 0;
}
