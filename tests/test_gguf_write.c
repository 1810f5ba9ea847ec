// GGUF writer: a file with every kind of key/value and F32/F16/BF16 tensors reads back
// through formats/gguf.h with the same values, a v3 header, 32-byte aligned tensor data and
// data offsets as gguf-py lays them out; duplicate keys/tensors and bad tensor types are
// refused. (The gguf pip package reads the writer's real outputs in tests/export/.)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "formats/halfconv.h"
#include "tests/testlib.h"

static void check(int ok, const char *what) {
    if (!ok) test_fail("%s (%s)", what, err_msg());
}

int main(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/test_gguf_write.gguf", test_env("MEDTUNE_TEST_BIN", "/tmp"));
    float a[3 * 5], b[7];
    uint16_t h[2 * 3], bf[4];
    for (int i = 0; i < 15; i++) a[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 7; i++) b[i] = (float)(i * i);
    for (int i = 0; i < 6; i++) h[i] = f32_to_fp16((float)i / 3.0f);
    for (int i = 0; i < 4; i++) bf[i] = f32_to_bf16((float)-i * 1.5f);
    const int32_t ints[4] = {-1, 2, -3, 2147483647};
    const float floats[2] = {0.5f, -2.25f};
    const char *strs[3] = {"a", "", "\xce\xbc-opioid"};

    gguf_writer w;
    gguf_writer_init(&w);
    gguf_writer_add_str(&w, "general.architecture", "llama");
    gguf_writer_add_u32(&w, "k.u32", 4000000000u);
    gguf_writer_add_i32(&w, "k.i32", -12345);
    gguf_writer_add_u64(&w, "k.u64", 1ull << 40);
    gguf_writer_add_f32(&w, "k.f32", 3.5f);
    gguf_writer_add_bool(&w, "k.bool", 1);
    gguf_writer_add_arr(&w, "k.arr_i32", GGUF_TYPE_INT32, ints, 4);
    gguf_writer_add_arr(&w, "k.arr_f32", GGUF_TYPE_FLOAT32, floats, 2);
    gguf_writer_add_arr_str(&w, "k.arr_str", strs, 3);
    check(!gguf_writer_add_tensor(&w, "a", 2, (const int64_t[]){5, 3}, GGML_TYPE_F32, a), "add a");
    check(!gguf_writer_add_tensor(&w, "b", 1, (const int64_t[]){7}, GGML_TYPE_F32, b), "add b");
    check(!gguf_writer_add_tensor(&w, "h", 2, (const int64_t[]){3, 2}, GGML_TYPE_F16, h), "add h");
    check(!gguf_writer_add_tensor(&w, "bf", 1, (const int64_t[]){4}, GGML_TYPE_BF16, bf), "add bf");
    if (gguf_writer_add_tensor(&w, "q", 1, (const int64_t[]){33}, GGML_TYPE_Q8_0, a) == 0)
        test_fail("a Q8_0 tensor of 33 elements was accepted");
    if (gguf_writer_add_tensor(&w, "u", 1, (const int64_t[]){32}, 5, a) == 0)
        test_fail("a tensor of unknown type 5 was accepted");
    if (gguf_writer_add_tensor(&w, "z", 1, (const int64_t[]){0}, GGML_TYPE_F32, a) == 0)
        test_fail("a zero-sized dimension was accepted");
    check(!gguf_writer_write(&w, path), "write");
    gguf_writer_free(&w);

    gguf_file f;
    check(!gguf_open(&f, path), "read back");
    if (f.version != 3 || f.alignment != 32 || f.n_kv != 9 || f.n_tensors != 4)
        test_fail("header: version %u alignment %u n_kv %lld n_tensors %lld", f.version,
                  f.alignment, (long long)f.n_kv, (long long)f.n_tensors);
    if (f.data_offset % 32) test_fail("data section at %llu, not 32-aligned",
                                      (unsigned long long)f.data_offset);
    int64_t iv;
    double dv;
    int bv;
    char sv[32];
    check(!gguf_get_cstr(&f, "general.architecture", sv, sizeof sv) && !strcmp(sv, "llama"),
          "architecture");
    check(!gguf_get_int(&f, "k.u32", &iv) && iv == 4000000000LL, "k.u32");
    check(!gguf_get_int(&f, "k.i32", &iv) && iv == -12345, "k.i32");
    check(!gguf_get_int(&f, "k.u64", &iv) && iv == (1LL << 40), "k.u64");
    check(!gguf_get_float(&f, "k.f32", &dv) && dv == 3.5, "k.f32");
    check(!gguf_get_bool(&f, "k.bool", &bv) && bv == 1, "k.bool");
    const gguf_kv *kv;
    gguf_type et;
    uint64_t n;
    check(!gguf_get_arr(&f, "k.arr_i32", &kv, &et, &n) && et == GGUF_TYPE_INT32 && n == 4,
          "k.arr_i32 type");
    for (uint64_t i = 0; i < n; i++)
        check(!gguf_arr_int(&f, kv, i, &iv) && iv == ints[i], "k.arr_i32 value");
    check(!gguf_get_arr(&f, "k.arr_f32", &kv, &et, &n) && et == GGUF_TYPE_FLOAT32 && n == 2,
          "k.arr_f32 type");
    for (uint64_t i = 0; i < n; i++)
        check(!gguf_arr_float(&f, kv, i, &dv) && dv == floats[i], "k.arr_f32 value");
    check(!gguf_get_arr(&f, "k.arr_str", &kv, &et, &n) && et == GGUF_TYPE_STRING && n == 3,
          "k.arr_str type");
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        check(!gguf_arr_str(&f, kv, i, &s, &len) && len == strlen(strs[i]) &&
                  !memcmp(s, strs[i], len),
              "k.arr_str value");
    }
    // gguf-py places each tensor at the running offset rounded up to the alignment.
    const uint64_t want_off[4] = {0, 64, 96, 128};
    const char *names[4] = {"a", "b", "h", "bf"};
    float out[16];
    for (int i = 0; i < 4; i++) {
        const gguf_tensor *t = gguf_find_tensor(&f, names[i]);
        if (!t) test_fail("tensor %s missing", names[i]);
        if (t->offset != want_off[i])
            test_fail("tensor %s at offset %llu, expected %llu", names[i],
                      (unsigned long long)t->offset, (unsigned long long)want_off[i]);
        check(!gguf_tensor_to_f32(&f, t, out), "tensor data");
        for (size_t k = 0; k < t->n_elements; k++) {
            float want = i == 0   ? a[k]
                         : i == 1 ? b[k]
                         : i == 2 ? fp16_to_f32(h[k])
                                  : bf16_to_f32(bf[k]);
            if (out[k] != want) test_fail("tensor %s[%zu] = %g, expected %g", names[i], k,
                                          (double)out[k], (double)want);
        }
    }
    const gguf_tensor *ta = gguf_find_tensor(&f, "a");
    if (ta->n_dims != 2 || ta->ne[0] != 5 || ta->ne[1] != 3) test_fail("tensor a dims");
    gguf_close(&f);

    gguf_writer_init(&w);
    gguf_writer_add_str(&w, "general.name", "x");
    gguf_writer_add_u32(&w, "general.name", 1);
    if (gguf_writer_write(&w, path) == 0 || !strstr(err_msg(), "duplicate metadata key"))
        test_fail("duplicate key accepted: %s", err_msg());
    gguf_writer_free(&w);
    gguf_writer_init(&w);
    check(!gguf_writer_add_tensor(&w, "t", 1, (const int64_t[]){7}, GGML_TYPE_F32, b), "t");
    check(!gguf_writer_add_tensor(&w, "t", 1, (const int64_t[]){7}, GGML_TYPE_F32, b), "t2");
    if (gguf_writer_write(&w, path) == 0 || !strstr(err_msg(), "duplicate tensor"))
        test_fail("duplicate tensor accepted: %s", err_msg());
    gguf_writer_free(&w);
    remove(path);
    printf("PASS\n");
    return 0;
}
