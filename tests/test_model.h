// Random models for the C tests that compare two paths of the training code on one model
// (kept apart from testlib.h so that tests without a model do not see model/ or rng types).
#ifndef MEDTUNE_TESTS_TEST_MODEL_H
#define MEDTUNE_TESTS_TEST_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "model/model.h"

// x[i] = offset + scale * u, u uniform in [-1, 1); x NULL does nothing.
void test_fill_uniform(float *x, size_t n, float scale, float offset, rng_state *r);
// Random weights for a model_alloc'ed model, reproducible from seed: every matrix value in
// [-0.1, 0.1], every norm weight the model has in [0.9, 1.1] (so activations stay in range).
void test_model_randomize(model *m, uint64_t seed);

#endif
