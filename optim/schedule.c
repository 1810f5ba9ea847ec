#include "optim/schedule.h"

#include <math.h>

float schedule_lr(const schedule_config *s, int64_t step) {
    double factor;
    if (step < s->warmup_steps) {
        factor = (double)step / (double)(s->warmup_steps > 1 ? s->warmup_steps : 1);
    } else {
        int64_t span = s->total_steps - s->warmup_steps;
        double progress = (double)(step - s->warmup_steps) / (double)(span > 1 ? span : 1);
        switch (s->decay) {
        case SCHEDULE_LINEAR: factor = 1.0 - progress; break;
        case SCHEDULE_COSINE: factor = 0.5 * (1.0 + cos(M_PI * progress)); break;
        default: factor = 1.0; break;
        }
        if (factor < 0.0) factor = 0.0;
        factor = factor * (1.0 - s->min_lr_ratio) + s->min_lr_ratio;
    }
    return (float)(s->lr * factor);
}
