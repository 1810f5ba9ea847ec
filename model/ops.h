// Element-wise and row-wise ops of the transformer, each as a *_forward / *_backward pair.
// Buffers are flat row-major float arrays; outputs come first. Backward functions accumulate
// (+=) into input gradients, as in llm.c, so several branches can feed one gradient buffer.
#ifndef MEDTUNE_MODEL_OPS_H
#define MEDTUNE_MODEL_OPS_H

#include <stdint.h>

#include "model/model.h"

// out[N,C] = embed[tokens[n], :], the rows dequantized from their stored type. The embedding
// is frozen: no backward.
void embedding_forward(float *out, const int32_t *tokens, const weight_mat *embed, int N);

// out[N,C] = w[C] * inp[N,C] * rstd[N],  rstd = 1/sqrt(mean(inp^2) + eps)
void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                     float eps);
// dinp[N,C] += d(out)/d(inp) applied to dout[N,C]
void rmsnorm_backward(float *dinp, const float *dout, const float *inp, const float *w,
                      const float *rstd, int N, int C);

// Rotary tables for positions 0..P-1: cos, sin [P, D/2], frequencies as transformers computes
// them (fp32 inv_freq, rope_scaling linear or llama3 applied).
void rope_tables_init(float *cos, float *sin, int P, int D, const model_config *cfg);
// x[N, nh*D] rotated in place by position pos[n] (rotate_half: pairs j and j+D/2).
void rope_forward(float *x, const int32_t *pos, const float *cos, const float *sin, int N, int nh,
                  int D);
// dx[N, nh*D] in place: the transpose of the rotation, i.e. rotation by -angle.
void rope_backward(float *dx, const int32_t *pos, const float *cos, const float *sin, int N,
                   int nh, int D);

// h[n] = silu(g[n]) * u[n] over n elements
void swiglu_forward(float *h, const float *g, const float *u, int64_t n);
// dg += dh * u * silu'(g),  du += dh * silu(g)
void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                     int64_t n);

// h[n] = gelu_tanh(g[n]) * u[n] (GeGLU with transformers' gelu_pytorch_tanh:
// 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))))
void geglu_forward(float *h, const float *g, const float *u, int64_t n);
// dg += dh * u * gelu_tanh'(g),  du += dh * gelu_tanh(g)
void geglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                    int64_t n);

// x[n] = cap * tanh(x[n] / cap) in place (logit soft-capping).
void softcap_forward(float *x, int64_t n, float cap);
// dx[n] *= 1 - (y[n] / cap)^2 in place, y the capped values (the derivative of cap*tanh(x/cap)).
void softcap_backward(float *dx, const float *y, int64_t n, float cap);

// x[n] *= s in place.
void scale_inplace(float *x, int64_t n, float s);
// y[n] += x[n] (the residual adds)
void add_inplace(float *y, const float *x, int64_t n);

// Cross-entropy of logits[N,V] against targets[N] (-1 = masked, no loss).
// Returns the sum of -log p(target) over unmasked rows and adds their count to *n_targets.
// When dlogits is non-NULL, it receives (softmax - onehot) * grad_scale for unmasked rows and
// zeros for masked rows (dlogits may alias logits).
double crossentropy_forward_backward(float *dlogits, const float *logits, const int32_t *targets,
                                     int N, int V, float grad_scale, int64_t *n_targets);

#endif
