#include "common/json_number.h"

#include <math.h>

int json_whole(const cJSON *v, double lo, double hi, long long *out) {
    if (!cJSON_IsNumber(v)) return 0;
    const double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || d != floor(d)) return 0;
    *out = (long long)d;
    return 1;
}
