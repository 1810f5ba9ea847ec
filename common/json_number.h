// Whole numbers read from JSON (configs, manifests, model files, datasets). cJSON stores every
// number as a double; converting one to an integer type is undefined behaviour when the value
// is outside that type's range, so the range is checked on the double, before the conversion.
#ifndef MEDTUNE_COMMON_JSON_NUMBER_H
#define MEDTUNE_COMMON_JSON_NUMBER_H

#include <cjson/cJSON.h>

// 1 when v is a JSON number that is a whole number in [lo, hi], with *out set to it; else 0
// (not a number, a fraction, out of range) and *out untouched. lo and hi must lie within
// +-2^53, where doubles are exact integers.
int json_whole(const cJSON *v, double lo, double hi, long long *out);

#endif
