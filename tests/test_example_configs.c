// The example configs in configs/ parse and validate: a train config with train_config_load,
// a prep config with prep_config_read (no data is touched).
// usage: test_example_configs CONFIG.json...
#include <stdio.h>
#include <string.h>

#include "common/config.h"
#include "common/error.h"
#include "data_prep/prep.h"
#include "tests/testlib.h"
#include "train/train_config.h"

int main(int argc, char **argv) {
    if (argc < 2) test_fail("usage: test_example_configs CONFIG.json...");
    for (int i = 1; i < argc; i++) {
        const char *name = strrchr(argv[i], '/');
        name = name ? name + 1 : argv[i];
        if (!strncmp(name, "prep_", 5)) {
            config c;
            prep_config pc;
            if (config_load(&c, argv[i]) || prep_config_read(&c, &pc)) test_fail("%s", err_msg());
            prep_config_free(&pc);
            config_free(&c);
        } else {
            train_config tc;
            if (train_config_load(&tc, argv[i], NULL, 0)) test_fail("%s", err_msg());
        }
        printf("ok: %s\n", argv[i]);
    }
    return 0;
}
