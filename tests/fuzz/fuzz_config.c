// libFuzzer harness: the JSON configs. The first input byte picks the reader; the rest is the
// config text, optionally followed by a NUL byte and up to two NUL-separated `--set a.b=v`
// assignments (they go through the same code as on the command line):
//   0  the train config (train_config_load on a scratch file: it takes a path). A config that
//      loads must survive the trip through the resolved config.json of the run directory:
//      train_config_to_json then train_config_from_json gives a config that resume accepts
//   1  the prep config (config_parse + config_set + prep_config_read)
//   2  a model's config.json (model_config_from_hf_json; --set parts are ignored)
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/error.h"
#include "data_prep/prep.h"
#include "model/model_load.h"
#include "tests/fuzz/fuzz_common.h"
#include "train/train_config.h"

static void fuzz_train(const char *text, char **sets, int n_sets) {
    char path[4096];
    fuzz_write(path, sizeof path, "train.json", text, strlen(text));
    train_config tc, again;
    if (train_config_load(&tc, path, sets, n_sets) != 0) {
        fuzz_expect_error("train_config_load");
        return;
    }
    cJSON *json = train_config_to_json(&tc);
    if (!json) fuzz_fail("train_config_to_json: %s", err_msg());
    if (train_config_from_json(&again, json, "config.json") != 0)
        fuzz_fail("the resolved config does not load again: %s", err_msg());
    if (train_config_compare_for_resume(&tc, &again) != 0)
        fuzz_fail("the resolved config differs from the loaded one: %s", err_msg());
    cJSON_Delete(json);
}

static void fuzz_prep(const char *text, char **sets, int n_sets) {
    config c;
    if (config_parse(&c, text, "prep.json") != 0) {
        fuzz_expect_error("config_parse");
        return;
    }
    int rc = 0;
    for (int i = 0; i < n_sets && rc == 0; i++)
        if ((rc = config_set(&c, sets[i])) != 0) fuzz_expect_error("config_set");
    prep_config pc;
    if (rc == 0 && prep_config_read(&c, &pc) != 0) fuzz_expect_error("prep_config_read");
    else if (rc == 0) prep_config_free(&pc);
    config_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    err_clear();
    char *text = fuzz_cstr(data + 1, size - 1);
    char *sets[2];
    int n_sets = 0;
    size_t at = strlen(text);
    while (at < size - 1 && n_sets < 2) {
        sets[n_sets++] = text + at + 1;
        at += 1 + strlen(text + at + 1);
    }
    switch (data[0] % 3) {
    case 0: fuzz_train(text, sets, n_sets); break;
    case 1: fuzz_prep(text, sets, n_sets); break;
    default: {
        model_config cfg;
        if (model_config_from_hf_json(&cfg, text, strlen(text), "config.json") != 0)
            fuzz_expect_error("model_config_from_hf_json");
    }
    }
    free(text);
    return 0;
}
