// Dumps what medtune's benchmark readers make of a file, for tests/eval/check_readers.py:
//   test_eval_readers FORMAT PATH [LIMIT [GOLD]]
// prints one JSON line per item {id, context, choices, gold} and a last line
// {"n", "skipped", "first_skip"}; on a reader error prints the error and exits 1.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/error.h"
#include "eval/mcq.h"

static void print_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_eval_readers FORMAT PATH [LIMIT [GOLD]]\n");
        return 2;
    }
    mcq_format f;
    mcq_set s;
    size_t limit = argc > 3 ? (size_t)strtoull(argv[3], NULL, 10) : 0;
    const char *gold = argc > 4 ? argv[4] : NULL;
    if (mcq_format_from_name(argv[1], &f) || mcq_set_read(&s, argv[2], f, limit, gold)) {
        fprintf(stderr, "error: %s\n", err_msg());
        return 1;
    }
    for (size_t i = 0; i < s.n; i++) {
        const mcq_item *it = &s.items[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", it->id);
        cJSON_AddStringToObject(o, "context", it->context);
        cJSON *c = cJSON_AddArrayToObject(o, "choices");
        for (int k = 0; k < it->n_choices; k++)
            cJSON_AddItemToArray(c, cJSON_CreateString(it->choices[k]));
        cJSON_AddNumberToObject(o, "gold", it->gold);
        print_json(o);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", (double)s.n);
    cJSON_AddNumberToObject(o, "skipped", (double)s.n_skipped);
    cJSON_AddStringToObject(o, "first_skip", s.first_skip);
    print_json(o);
    mcq_set_free(&s);
    return 0;
}
