// formats/quant: the row API.
//   test_quant                              unit checks (block table, hand-decoded blocks,
//                                           round-trip error of every quantizer, errors)
// Helper modes for tests/formats/check_quant.py (which compares with gguf-py):
//   test_quant dump FILE.gguf OUT_DIR       every tensor through gguf_open +
//                                           gguf_tensor_to_f32 into OUT_DIR/<name>.f32; an
//                                           error prints "medtune: error: <msg>", exits 1
//   test_quant quantize TYPE IN.f32 OUT     IN (raw fp32) through quant_quantize_row as one row
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/rng.h"
#include "formats/gguf.h"
#include "formats/halfconv.h"
#include "formats/quant.h"
#include "tests/testlib.h"

static void put_half(uint8_t *p, float v) {
    uint16_t h = f32_to_fp16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void test_table(void) {
    static const struct {
        uint32_t type, block, bytes;
    } want[] = {{GGML_TYPE_F32, 1, 4},     {GGML_TYPE_F16, 1, 2},     {GGML_TYPE_BF16, 1, 2},
                {GGML_TYPE_Q4_0, 32, 18},  {GGML_TYPE_Q4_1, 32, 20},  {GGML_TYPE_Q5_0, 32, 22},
                {GGML_TYPE_Q5_1, 32, 24},  {GGML_TYPE_Q8_0, 32, 34},  {GGML_TYPE_Q2_K, 256, 84},
                {GGML_TYPE_Q3_K, 256, 110}, {GGML_TYPE_Q4_K, 256, 144}, {GGML_TYPE_Q5_K, 256, 176},
                {GGML_TYPE_Q6_K, 256, 210}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        uint32_t t = want[i].type;
        if (quant_block_size(t) != want[i].block || quant_block_bytes(t) != want[i].bytes)
            test_fail("%s: block %u/%u bytes", ggml_type_name(t), quant_block_size(t),
                      quant_block_bytes(t));
        if (!quant_can_dequantize(t)) test_fail("%s should dequantize", ggml_type_name(t));
        if (quant_row_bytes(t, 512) != 512 / want[i].block * want[i].bytes)
            test_fail("%s: row bytes", ggml_type_name(t));
    }
    if (quant_block_size(5) != 0 || quant_can_dequantize(5)) test_fail("id 5 is not a type");
}

// Blocks decoded by hand from the layouts in docs/formats.md.
static void test_known_blocks(void) {
    uint8_t b[210];
    float y[256];
    // Q4_0: d = 0.5, byte j = (j % 16) | (15 - j % 16) << 4.
    put_half(b, 0.5f);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    if (quant_dequantize_row(GGML_TYPE_Q4_0, b, y, 32)) test_fail("q4_0: %s", err_msg());
    for (int j = 0; j < 16; j++)
        if (y[j] != 0.5f * (float)(j - 8) || y[j + 16] != 0.5f * (float)(7 - j))
            test_fail("q4_0 element %d: %g %g", j, y[j], y[j + 16]);
    // Q5_0: d = 1, all nibbles 0, qh = 0x80000001: element 0 and 31 get 16 -> x = 0; others -16.
    put_half(b, 1.0f);
    uint32_t qh = 0x80000001u;
    memcpy(b + 2, &qh, 4);
    memset(b + 6, 0, 16);
    if (quant_dequantize_row(GGML_TYPE_Q5_0, b, y, 32)) test_fail("q5_0: %s", err_msg());
    for (int j = 0; j < 32; j++)
        if (y[j] != ((j == 0 || j == 31) ? 0.0f : -16.0f)) test_fail("q5_0 element %d: %g", j, y[j]);
    // Q6_K: d = 0.25, every scale 2, ql = 0x21 (lows 1 and 2), qh = 0xe4 (highs 0,1,2,3):
    // element groups l, l+32, l+64, l+96 of each 128 decode to q = 1, 1+16, 2+32, 2+48.
    memset(b, 0, sizeof b);
    memset(b, 0x21, 128);
    memset(b + 128, 0xe4, 64);
    memset(b + 192, 2, 16);
    put_half(b + 208, 0.25f);
    if (quant_dequantize_row(GGML_TYPE_Q6_K, b, y, 256)) test_fail("q6_k: %s", err_msg());
    static const int q[4] = {1, 17, 34, 50};
    for (int e = 0; e < 256; e++)
        if (y[e] != 0.5f * (float)(q[(e % 128) / 32] - 32)) test_fail("q6_k element %d: %g", e, y[e]);
    // Q4_K: d = 1, dmin = 0.5, sub-block j has scale j + 1 and min 2 j (6-bit packing), all
    // quants 3: x = 3 (j + 1) - j.
    memset(b, 0, sizeof b);
    put_half(b, 1.0f);
    put_half(b + 2, 0.5f);
    for (int j = 0; j < 8; j++) {
        int sc = j + 1, m = 2 * j;
        if (j < 4) {
            b[4 + j] = (uint8_t)sc;
            b[4 + j + 4] = (uint8_t)m;
        } else {
            b[4 + j + 4] = (uint8_t)((sc & 15) | ((m & 15) << 4));
            b[4 + j - 4] |= (uint8_t)((sc >> 4) << 6);
            b[4 + j] |= (uint8_t)((m >> 4) << 6);
        }
    }
    memset(b + 16, 0x33, 128);
    if (quant_dequantize_row(GGML_TYPE_Q4_K, b, y, 256)) test_fail("q4_k: %s", err_msg());
    for (int e = 0; e < 256; e++)
        if (y[e] != (float)(3 * (e / 32 + 1) - e / 32)) test_fail("q4_k element %d: %g", e, y[e]);
}

// Quantize then dequantize Gaussian rows: relative RMS error below each type's bound
// (docs/formats.md), and exact for values the grid holds.
static void test_round_trip(void) {
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    rng_state r;
    rng_init(&r, 7);
    double ss = 0;
    for (int i = 0; i < N; i++) {
        // Box-Muller: Gaussian weights, the distribution of trained linear layers.
        float u1 = 1.0f - rng_uniform(&r), u2 = rng_uniform(&r);
        x[i] = 0.02f * sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
        ss += (double)x[i] * x[i];
    }
    static const struct {
        uint32_t type;
        double bound;
    } cases[] = {{GGML_TYPE_F32, 0},       {GGML_TYPE_F16, 3e-4},     {GGML_TYPE_BF16, 2e-3},
                 {GGML_TYPE_Q8_0, 0.006},  {GGML_TYPE_Q6_K, 0.02},    {GGML_TYPE_Q5_1, 0.04},
                 {GGML_TYPE_Q5_0, 0.046},  {GGML_TYPE_Q5_K, 0.039},   {GGML_TYPE_Q4_1, 0.085},
                 {GGML_TYPE_Q4_0, 0.092},  {GGML_TYPE_Q4_K, 0.078}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        uint32_t t = cases[c].type;
        if (!quant_can_quantize(t)) test_fail("%s should quantize", ggml_type_name(t));
        if (quant_quantize_row(t, x, q, N) || quant_dequantize_row(t, q, y, N))
            test_fail("%s: %s", ggml_type_name(t), err_msg());
        double e = 0;
        for (int i = 0; i < N; i++) e += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
        double rel = sqrt(e / ss);
        printf("%-5s relative RMS error %.5f (bound %g)\n", ggml_type_name(t), rel,
               cases[c].bound);
        if (rel > cases[c].bound) test_fail("%s: relative RMS error %g", ggml_type_name(t), rel);
        // A row of zeros must stay zeros (no 0/0 in the scale search).
        memset(y, 0, sizeof y);
        if (quant_quantize_row(t, y, q, 256) || quant_dequantize_row(t, q, y, 256))
            test_fail("%s zeros: %s", ggml_type_name(t), err_msg());
        for (int i = 0; i < 256; i++)
            if (y[i] != 0.0f) test_fail("%s: zeros decode to %g", ggml_type_name(t), y[i]);
    }
}

static void test_errors(void) {
    float y[512] = {0};
    uint8_t q[512] = {0};
    if (quant_dequantize_row(17, q, y, 256) == 0 ||
        strcmp(err_msg(), "tensor type IQ2_XS is not supported (nearest supported: Q2_K)"))
        test_fail("IQ2_XS: %s", err_msg());
    if (quant_dequantize_row(GGML_TYPE_Q8_K, q, y, 256) == 0 ||
        !strstr(err_msg(), "Q8_K is not supported (nearest supported: Q8_0)"))
        test_fail("Q8_K: %s", err_msg());
    if (quant_dequantize_row(GGML_TYPE_Q4_K, q, y, 100) == 0 ||
        strcmp(err_msg(), "100 elements is not a multiple of the Q4_K block size 256"))
        test_fail("Q4_K n=100: %s", err_msg());
    if (quant_quantize_row(GGML_TYPE_Q8_0, y, q, 33) == 0 || !strstr(err_msg(), "block size 32"))
        test_fail("Q8_0 n=33: %s", err_msg());
    if (quant_quantize_row(GGML_TYPE_Q3_K, y, q, 256) == 0 ||
        !strstr(err_msg(), "quantizing to Q3_K is not supported"))
        test_fail("Q3_K quantize: %s", err_msg());
    if (quant_dequantize_row(99, q, y, 256) == 0 || !strstr(err_msg(), "type 99 is not supported"))
        test_fail("type 99: %s", err_msg());
}

static int run_dump(const char *path, const char *dir) {
    gguf_file f;
    if (gguf_open(&f, path)) {
        fprintf(stderr, "medtune: error: %s\n", err_msg());
        return 1;
    }
    int rc = 0;
    for (int64_t i = 0; i < f.n_tensors && !rc; i++) {
        const gguf_tensor *t = &f.tensors[i];
        float *out = malloc(t->n_elements * sizeof *out + 1);
        if (!out || gguf_tensor_to_f32(&f, t, out)) {
            fprintf(stderr, "medtune: error: %s\n", out ? err_msg() : "out of memory");
            rc = 1;
        } else {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s.f32", dir, t->name);
            FILE *fp = fopen(p, "wb");
            if (!fp || fwrite(out, sizeof *out, t->n_elements, fp) != t->n_elements)
                test_fail("cannot write %s", p);
            fclose(fp);
        }
        free(out);
    }
    gguf_close(&f);
    return rc;
}

static uint32_t type_by_name(const char *name) {
    for (uint32_t t = 0; t < 64; t++)
        if (quant_type_known(t) && !strcmp(ggml_type_name(t), name)) return t;
    test_fail("unknown type %s", name);
}

static int run_quantize(const char *type, const char *in, const char *out) {
    uint32_t t = type_by_name(type);
    FILE *fp = fopen(in, "rb");
    if (!fp) test_fail("cannot open %s", in);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp) / 4;
    fseek(fp, 0, SEEK_SET);
    float *x = malloc((size_t)n * 4 + 4);
    uint8_t *q = malloc((size_t)n * 4 + 4);
    if (!x || !q || fread(x, 4, (size_t)n, fp) != (size_t)n) test_fail("cannot read %s", in);
    fclose(fp);
    if (quant_quantize_row(t, x, q, n)) test_fail("%s", err_msg());
    size_t bytes = quant_row_bytes(t, n);
    if (!(fp = fopen(out, "wb")) || fwrite(q, 1, bytes, fp) != bytes) test_fail("cannot write %s", out);
    fclose(fp);
    free(x);
    free(q);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "dump")) return run_dump(argv[2], argv[3]);
    if (argc == 5 && !strcmp(argv[1], "quantize")) return run_quantize(argv[2], argv[3], argv[4]);
    if (argc != 1) test_fail("usage: test_quant [dump FILE.gguf DIR | quantize TYPE IN OUT]");
    test_table();
    test_known_blocks();
    test_round_trip();
    test_errors();
    printf("ok\n");
    return 0;
}
