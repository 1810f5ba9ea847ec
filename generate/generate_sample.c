// Choosing the next token: greedy argmax, or a draw from softmax(logits / temperature)
// restricted to the top-p nucleus, with the seeded generator of common/rng.h.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "generate/generate.h"

int32_t logits_argmax(const float *logits, int V) {
    int32_t best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

int sampler_init(sampler *s, int V, float temperature, float top_p, uint64_t seed) {
    memset(s, 0, sizeof *s);
    if (!(temperature >= 0.0f) || !isfinite(temperature))
        return err_set("temperature: must be a finite number >= 0, got %g", temperature);
    if (!(top_p > 0.0f && top_p <= 1.0f))
        return err_set("top_p: must be in (0, 1], got %g", top_p);
    if (V <= 0) return err_set("sampler: vocabulary size %d must be positive", V);
    s->temperature = temperature;
    s->top_p = top_p;
    s->V = V;
    rng_init(&s->rng, seed);
    if (temperature > 0.0f) {
        s->probs = malloc((size_t)V * sizeof *s->probs);
        s->order = malloc((size_t)V * sizeof *s->order);
        if (!s->probs || !s->order) {
            sampler_free(s);
            return err_set("sampler: out of memory for %d probabilities", V);
        }
    }
    return 0;
}

void sampler_free(sampler *s) {
    free(s->probs);
    free(s->order);
    memset(s, 0, sizeof *s);
}

// Most probable first; the lower id first among equals (the greedy choice stays first).
static int by_prob_desc(const void *a, const void *b, void *probs) {
    const float *p = probs;
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (p[i] != p[j]) return p[i] > p[j] ? -1 : 1;
    return (i > j) - (i < j);
}

// Sorts the tokens with probability >= cutoff and keeps the smallest prefix whose mass reaches
// top_p. Returns the prefix length (0 when the candidates cannot reach top_p) and its mass.
static int nucleus(sampler *s, float cutoff, double *mass) {
    int n = 0;
    for (int i = 0; i < s->V; i++)
        if (s->probs[i] >= cutoff) s->order[n++] = i;
    qsort_r(s->order, (size_t)n, sizeof *s->order, by_prob_desc, s->probs);
    *mass = 0.0;
    for (int k = 0; k < n; k++) {
        *mass += s->probs[s->order[k]];
        if (*mass >= s->top_p) return k + 1;
    }
    return 0;
}

int32_t sampler_sample(sampler *s, const float *logits) {
    const int V = s->V;
    if (s->temperature == 0.0f) return logits_argmax(logits, V);
    const int32_t top = logits_argmax(logits, V);
    const float mx = logits[top];
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        s->probs[i] = expf((logits[i] - mx) / s->temperature);
        sum += s->probs[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int i = 0; i < V; i++) s->probs[i] *= inv;

    int n = 0;
    double mass = 0.0;
    if (s->top_p >= 1.0f) {
        for (int i = 0; i < V; i++) s->order[n++] = i;
        mass = 1.0;
    } else {
        // Tokens below (1 - top_p) / (V - 1) can only matter when nearly all are below it
        // (together they would have to reach 1 - top_p): sort only the ones above first.
        n = nucleus(s, V > 1 ? (1.0f - s->top_p) / (float)(V - 1) : 0.0f, &mass);
        if (n == 0) n = nucleus(s, 0.0f, &mass);
        if (n == 0) n = V;  // top_p beyond the float sum of all probabilities
    }
    const double r = (double)rng_uniform(&s->rng) * mass;
    double acc = 0.0;
    for (int k = 0; k < n; k++) {
        acc += s->probs[s->order[k]];
        if (r < acc) return s->order[k];
    }
    return s->order[n - 1];  // r within rounding of the total mass
}
