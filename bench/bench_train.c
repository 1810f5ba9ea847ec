// Training-step throughput of medtune on a model shape with random weights:
// forward + loss + backward + clip + AdamW per step, LoRA on the chosen targets.
// Prints one JSON line: tokens/s (median step), peak RSS, activation bytes.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/rng.h"
#include "optim/adamw.h"
#include "model/lora.h"
#include "model/transformer.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    model_config c = {.arch = MODEL_ARCH_LLAMA, .hidden_size = 576, .intermediate_size = 1536,
                      .n_layers = 30, .n_heads = 9, .n_kv_heads = 3, .head_dim = 64,
                      .vocab_size = 49152, .max_position_embeddings = 8192, .rms_norm_eps = 1e-5f,
                      .rope_theta = 100000.0f, .tie_word_embeddings = 1, .bos_token_id = 1};
    int B = 4, T = 256, steps = 5, r = 16;
    float alpha = 32.0f;
    const char *model_path = NULL;  // --model: a file's weights, kept as stored, not random
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        int v = atoi(argv[i + 1]);
        if (!strcmp(k, "--model")) model_path = argv[i + 1];
        else if (!strcmp(k, "--batch")) B = v;
        else if (!strcmp(k, "--seq")) T = v;
        else if (!strcmp(k, "--steps")) steps = v;
        else if (!strcmp(k, "--layers")) c.n_layers = v;
        else if (!strcmp(k, "--hidden")) c.hidden_size = v;
        else if (!strcmp(k, "--intermediate")) c.intermediate_size = v;
        else if (!strcmp(k, "--heads")) c.n_heads = v;
        else if (!strcmp(k, "--kv-heads")) c.n_kv_heads = v;
        else if (!strcmp(k, "--head-dim")) c.head_dim = v;
        else if (!strcmp(k, "--vocab")) c.vocab_size = v;
        else if (!strcmp(k, "--rank")) r = v;
        else {
            fprintf(stderr, "bench_train: unknown option %s\n", k);
            return 2;
        }
    }
    model m;
    lora_adapter lora;
    lm_plan plan;
    adamw_state opt;
    lora_config lc = {.r = r, .alpha = alpha, .targets = (1u << LORA_N_TARGETS) - 1};
    if (model_path ? model_load(&m, model_path) : model_alloc(&m, &c)) {
        fprintf(stderr, "bench_train: %s\n", err_msg());
        return 1;
    }
    if (model_path) c = m.cfg;
    if (lora_adapter_init(&lora, &c, &lc) ||
        lm_plan_init(&plan, &m, &lora, B, T) ||
        adamw_init(&opt, &(adamw_config){1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f}, lora.n_params)) {
        fprintf(stderr, "bench_train: %s\n", err_msg());
        return 1;
    }
    rng_state rng;
    rng_init(&rng, 1);
    if (!model_path)
        for (size_t i = 0; i < m.n_params; i++) m.arena[i] = (rng_uniform(&rng) - 0.5f) * 0.1f;
    lora_adapter_init_peft(&lora, 2);
    int N = B * T;
    int32_t *tokens = malloc(sizeof(int32_t) * N), *targets = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) {
        tokens[i] = (int32_t)rng_below(&rng, (uint64_t)c.vocab_size);
        targets[i] = (int32_t)rng_below(&rng, (uint64_t)c.vocab_size);
    }
    lm_batch batch = {.tokens = tokens, .targets = targets};
    double *times = calloc((size_t)steps, sizeof(double));
    double loss = 0;
    for (int s = 0; s < steps + 1; s++) {  // the first step warms up caches and page faults
        double t0 = clock_now_s();
        memset(lora.grads, 0, lora.n_params * sizeof(float));
        int64_t n_tgt = 0;
        loss = lm_forward(&plan, &batch, 1, 1.0f / (float)N, &n_tgt) / (double)n_tgt;
        lm_backward(&plan);
        grad_clip_global_norm(lora.grads, lora.n_params, 1.0f);
        adamw_step(&opt, lora.params, lora.grads, 1e-4f);
        if (s > 0) times[s - 1] = clock_now_s() - t0;
    }
    qsort(times, (size_t)steps, sizeof(double), cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"impl\": \"medtune\", \"batch\": %d, \"seq\": %d, \"threads\": %d, "
           "\"tok_per_s\": %.1f, \"step_s\": %.3f, \"peak_rss_gb\": %.2f, "
           "\"activations_gb\": %.2f, \"weights_gb\": %.2f, \"loss\": %.4f}\n",
           B, T, omp_get_max_threads(), N / times[steps / 2], times[steps / 2],
           ru.ru_maxrss * 1024.0 / 1e9, lm_plan_bytes(&plan) / 1e9,
           model_memory_bytes(&m) / 1e9, loss);
    free(times);
    free(tokens);
    free(targets);
    adamw_free(&opt);
    lm_plan_free(&plan);
    lora_adapter_free(&lora);
    model_free(&m);
    return isfinite(loss) ? 0 : 1;
}
