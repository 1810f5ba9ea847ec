// AdamW exactly as torch.optim.AdamW (decoupled weight decay, bias correction, eps added after
// the square root of the corrected second moment), on one flat parameter vector.
#ifndef MEDTUNE_OPTIM_ADAMW_H
#define MEDTUNE_OPTIM_ADAMW_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} adamw_config;

typedef struct {
    adamw_config cfg;
    size_t n;
    float *m;      // first moment
    float *v;      // second moment
    int64_t step;  // updates done so far
} adamw_state;

int adamw_init(adamw_state *s, const adamw_config *cfg, size_t n);
void adamw_free(adamw_state *s);
// One update of params with grads at learning rate lr (the schedule's value for this step).
void adamw_step(adamw_state *s, float *params, const float *grads, float lr);

// torch.nn.utils.clip_grad_norm_: returns the global L2 norm before clipping and scales grads
// by max_norm / (norm + 1e-6) when that is below 1. max_norm <= 0 disables clipping.
float grad_clip_global_norm(float *grads, size_t n, float max_norm);

#endif
