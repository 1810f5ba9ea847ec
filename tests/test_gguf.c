// GGUF reader: crafted files for every header, metadata and tensor-info check, typed
// accessors on every value type, and truncations / byte flips of a valid file (clean errors,
// never a read outside the mapping; run under ASan). Dequantization itself is compared with
// the `gguf` Python package in tests/load (run_case.py).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "formats/gguf.h"
#include "tests/testlib.h"

static char dir[] = "/tmp/medtune_gguf_XXXXXX";
static char path[4200];

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) test_fail("out of memory");
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void str(buf *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void kv_u32(buf *b, const char *k, uint32_t v) {
    str(b, k);
    u32(b, GGUF_TYPE_UINT32);
    u32(b, v);
}
static void pad_to(buf *b, size_t align) {
    while (b->n % align) put(b, "", 1);
}
static void header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4);
    u32(b, version);
    u64(b, n_tensors);
    u64(b, n_kv);
}
static void tensor_info(buf *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type,
                        uint64_t offset) {
    str(b, name);
    u32(b, nd);
    for (uint32_t i = 0; i < nd; i++) u64(b, ne[i]);
    u32(b, type);
    u64(b, offset);
}

static void write_buf(const buf *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->p, 1, n, f) != n || fclose(f) != 0) test_fail("cannot write %s", path);
}

static void expect_error(const char *what, buf *b, const char *needle) {
    write_buf(b, b->n);
    gguf_file f;
    if (gguf_open(&f, path) == 0) test_fail("%s: opened a bad file", what);
    const char *msg = err_msg();
    if (strncmp(msg, path, strlen(path)) != 0 || !strstr(msg, needle))
        test_fail("%s: error '%s' lacks the file name or '%s'", what, msg, needle);
    if (strchr(msg, '\n')) test_fail("%s: error spans lines", what);
    free(b->p);
    memset(b, 0, sizeof *b);
}

// One tensor "t" of `type` with ne0 x 1 elements and `data_bytes` bytes of data.
static void one_tensor(buf *b, uint32_t type, uint64_t ne0, uint64_t offset, size_t data_bytes) {
    header(b, 3, 1, 0);
    uint64_t ne[2] = {ne0, 1};
    tensor_info(b, "t", 2, ne, type, offset);
    pad_to(b, 32);
    for (size_t i = 0; i < data_bytes; i++) put(b, "\x3c", 1);
}

static void test_header_checks(void) {
    buf b = {0};
    put(&b, "GGUX", 4);
    u32(&b, 3);
    expect_error("magic", &b, "bad magic");
    header(&b, 1, 0, 0);
    expect_error("v1", &b, "version 1");
    header(&b, 0x03000000u, 0, 0);
    expect_error("endian", &b, "unsupported GGUF version");
    put(&b, "GGUF", 4);
    u32(&b, 3);
    u32(&b, 0);
    expect_error("short header", &b, "truncated");
    header(&b, 3, 0, 1000000);
    expect_error("kv count", &b, "metadata count");
    header(&b, 3, 1000000, 0);
    expect_error("tensor count", &b, "tensor count");
    header(&b, 3, 0, 1);
    u64(&b, 1000);
    put(&b, "abcdefghijklmnop", 16);
    expect_error("key length", &b, "string length 1000");
    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, 13);
    u32(&b, 0);
    expect_error("value type", &b, "k: unknown value type 13");
    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, GGUF_TYPE_STRING);
    u64(&b, 99);
    expect_error("value string", &b, "k: string length 99");
    header(&b, 3, 0, 1);
    str(&b, "arr");
    u32(&b, GGUF_TYPE_ARRAY);
    u32(&b, GGUF_TYPE_UINT32);
    u64(&b, 1ull << 40);
    expect_error("array length", &b, "arr: array of 1099511627776 uint32");
    header(&b, 3, 0, 1);
    str(&b, "arr");
    u32(&b, GGUF_TYPE_ARRAY);
    u32(&b, GGUF_TYPE_STRING);
    u64(&b, 2);
    str(&b, "x");
    u64(&b, 50);
    expect_error("array strings", &b, "arr: string length 50");
    header(&b, 3, 0, 1);
    str(&b, "nest");
    u32(&b, GGUF_TYPE_ARRAY);
    u32(&b, GGUF_TYPE_ARRAY);
    u64(&b, 0);
    expect_error("nested", &b, "nest: unsupported array element type 9");
    header(&b, 3, 0, 2);
    kv_u32(&b, "dup", 1);
    kv_u32(&b, "dup", 2);
    expect_error("duplicate key", &b, "dup: duplicate metadata key");
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 48);
    expect_error("alignment", &b, "general.alignment: 48 is not a power of two");
    header(&b, 3, 0, 1);
    str(&b, "general.alignment");
    u32(&b, GGUF_TYPE_UINT64);
    u64(&b, 64);
    expect_error("alignment type", &b, "general.alignment: expected uint32");
}

static void test_tensor_checks(void) {
    buf b = {0};
    header(&b, 3, 1, 0);
    uint64_t ne5[5] = {1, 1, 1, 1, 1};
    tensor_info(&b, "five", 5, ne5, GGML_TYPE_F32, 0);
    expect_error("dims", &b, "five: 5 dimensions");
    one_tensor(&b, 99, 32, 0, 128);
    expect_error("type", &b, "t: unknown tensor type 99");
    one_tensor(&b, GGML_TYPE_Q4_0, 48, 0, 64);
    expect_error("block", &b, "t: ne[0] = 48 is not a multiple of the Q4_0 block size 32");
    one_tensor(&b, GGML_TYPE_F32, 8, 0, 31);
    expect_error("short data", &b, "t: F32 data [0, 32) runs past the end");
    one_tensor(&b, GGML_TYPE_F32, 8, 16, 64);
    expect_error("misaligned", &b, "t: data offset 16 is not a multiple of the alignment 32");
    one_tensor(&b, GGML_TYPE_F32, 8, 1ull << 62, 64);
    expect_error("huge offset", &b, "runs past the end");
    header(&b, 3, 1, 0);
    uint64_t big[2] = {1ull << 40, 1ull << 40};
    tensor_info(&b, "big", 2, big, GGML_TYPE_F32, 0);
    expect_error("overflow", &b, "big: dimensions overflow");
    header(&b, 3, 2, 0);
    uint64_t ne[1] = {16};
    tensor_info(&b, "a", 1, ne, GGML_TYPE_F32, 0);
    tensor_info(&b, "b", 1, ne, GGML_TYPE_F32, 32);
    pad_to(&b, 32);
    for (int i = 0; i < 96; i++) put(&b, "", 1);
    expect_error("overlap", &b, "b: data at offset 32 overlaps tensor a");
    header(&b, 3, 2, 0);
    tensor_info(&b, "a", 1, ne, GGML_TYPE_F32, 0);
    tensor_info(&b, "a", 1, ne, GGML_TYPE_F32, 64);
    pad_to(&b, 32);
    for (int i = 0; i < 128; i++) put(&b, "", 1);
    expect_error("duplicate tensor", &b, "a: duplicate tensor name");
    header(&b, 3, 1, 0);
    tensor_info(&b, "t", 1, ne, GGML_TYPE_F32, 0);
    expect_error("no data section", &b, "truncated");
}

// Every value type, custom alignment, an IQ4_XS tensor (valid size, not dequantizable).
static buf good_file(void) {
    buf b = {0};
    header(&b, 3, 2, 15);
    kv_u32(&b, "general.alignment", 64);
    str(&b, "u8"), u32(&b, GGUF_TYPE_UINT8), put(&b, "\xfe", 1);
    str(&b, "i8"), u32(&b, GGUF_TYPE_INT8), put(&b, "\xfe", 1);
    str(&b, "u16"), u32(&b, GGUF_TYPE_UINT16), put(&b, "\xff\xff", 2);
    str(&b, "i16"), u32(&b, GGUF_TYPE_INT16), put(&b, "\xff\xff", 2);
    str(&b, "i32"), u32(&b, GGUF_TYPE_INT32), u32(&b, (uint32_t)-5);
    float f = 0.25f;
    str(&b, "f32"), u32(&b, GGUF_TYPE_FLOAT32), put(&b, &f, 4);
    str(&b, "yes"), u32(&b, GGUF_TYPE_BOOL), put(&b, "\x01", 1);
    str(&b, "name"), u32(&b, GGUF_TYPE_STRING), str(&b, "llama");
    str(&b, "u64"), u32(&b, GGUF_TYPE_UINT64), u64(&b, 1ull << 63);
    str(&b, "i64"), u32(&b, GGUF_TYPE_INT64), u64(&b, (uint64_t)-7);
    double d = -1.5;
    str(&b, "f64"), u32(&b, GGUF_TYPE_FLOAT64), put(&b, &d, 8);
    str(&b, "tokens"), u32(&b, GGUF_TYPE_ARRAY), u32(&b, GGUF_TYPE_STRING), u64(&b, 3);
    str(&b, "a"), str(&b, ""), str(&b, "<s>");
    str(&b, "types"), u32(&b, GGUF_TYPE_ARRAY), u32(&b, GGUF_TYPE_INT32), u64(&b, 2);
    u32(&b, 1), u32(&b, (uint32_t)-3);
    str(&b, "scores"), u32(&b, GGUF_TYPE_ARRAY), u32(&b, GGUF_TYPE_FLOAT32), u64(&b, 1);
    put(&b, &f, 4);
    uint64_t ne[2] = {4, 2};
    tensor_info(&b, "w", 2, ne, GGML_TYPE_F32, 0);
    uint64_t ne_k[1] = {256};
    tensor_info(&b, "k", 1, ne_k, 23 /* IQ4_XS */, 64);
    pad_to(&b, 64);
    for (int i = 0; i < 8; i++) {
        float v = (float)i - 2.0f;
        put(&b, &v, 4);
    }
    pad_to(&b, 64);
    for (int i = 0; i < 136; i++) put(&b, "\x11", 1);
    return b;
}

static void test_good_file(void) {
    buf b = good_file();
    write_buf(&b, b.n);
    gguf_file f;
    if (gguf_open(&f, path) != 0) test_fail("good file: %s", err_msg());
    if (f.alignment != 64 || f.data_offset % 64 != 0) test_fail("alignment %u", f.alignment);
    int64_t v;
    const struct {
        const char *key;
        int64_t want;
    } INTS[] = {{"u8", 254}, {"i8", -2}, {"u16", 65535}, {"i16", -1}, {"i32", -5}, {"i64", -7}};
    for (size_t i = 0; i < sizeof INTS / sizeof INTS[0]; i++)
        if (gguf_get_int(&f, INTS[i].key, &v) != 0 || v != INTS[i].want)
            test_fail("%s: %lld (%s)", INTS[i].key, (long long)v, err_msg());
    if (gguf_get_int(&f, "u64", &v) == 0 || !strstr(err_msg(), "u64: value 9223372036854775808 out of range"))
        test_fail("u64 range: %s", err_msg());
    if (gguf_get_int(&f, "f32", &v) == 0 || !strstr(err_msg(), "f32: expected an integer, found float32"))
        test_fail("int from float: %s", err_msg());
    if (gguf_get_int(&f, "missing", &v) == 0 || !strstr(err_msg(), "missing: missing metadata key"))
        test_fail("missing key: %s", err_msg());
    double x;
    if (gguf_get_float(&f, "f32", &x) != 0 || x != 0.25) test_fail("f32");
    if (gguf_get_float(&f, "f64", &x) != 0 || x != -1.5) test_fail("f64");
    int yes;
    if (gguf_get_bool(&f, "yes", &yes) != 0 || yes != 1) test_fail("bool");
    if (gguf_get_bool(&f, "u8", &yes) == 0) test_fail("bool from u8");
    char name[8];
    if (gguf_get_cstr(&f, "name", name, sizeof name) != 0 || strcmp(name, "llama"))
        test_fail("string");
    if (gguf_get_cstr(&f, "name", name, 3) == 0) test_fail("string into a short buffer");
    const gguf_kv *kv;
    gguf_type et;
    uint64_t n;
    const char *s;
    size_t len;
    if (gguf_get_arr(&f, "tokens", &kv, &et, &n) != 0 || et != GGUF_TYPE_STRING || n != 3)
        test_fail("string array");
    if (gguf_arr_str(&f, kv, 2, &s, &len) != 0 || len != 3 || memcmp(s, "<s>", 3))
        test_fail("tokens[2]");
    if (gguf_arr_str(&f, kv, 1, &s, &len) != 0 || len != 0) test_fail("tokens[1]");
    if (gguf_arr_str(&f, kv, 3, &s, &len) == 0 || !strstr(err_msg(), "tokens: index 3 out of range"))
        test_fail("index check: %s", err_msg());
    if (gguf_arr_int(&f, kv, 0, &v) == 0) test_fail("int from a string array");
    if (gguf_get_arr(&f, "types", &kv, &et, &n) != 0 || gguf_arr_int(&f, kv, 1, &v) != 0 || v != -3)
        test_fail("int array");
    if (gguf_get_arr(&f, "scores", &kv, &et, &n) != 0 || gguf_arr_float(&f, kv, 0, &x) != 0 ||
        x != 0.25)
        test_fail("float array");
    if (gguf_get_arr(&f, "name", &kv, &et, &n) == 0) test_fail("array from a string");
    const gguf_tensor *t = gguf_find_tensor(&f, "w");
    if (!t || t->n_dims != 2 || t->ne[0] != 4 || t->ne[1] != 2 || t->n_elements != 8)
        test_fail("tensor w");
    float out[8];
    if (gguf_tensor_to_f32(&f, t, out) != 0 || out[7] != 5.0f) test_fail("w data");
    t = gguf_find_tensor(&f, "k");
    if (!t || t->n_bytes != 136 || t->data != f.map.data + f.data_offset + 64) test_fail("tensor k");
    float big[256];
    if (gguf_tensor_to_f32(&f, t, big) == 0 ||
        !strstr(err_msg(), "k: tensor type IQ4_XS is not supported (nearest supported: Q4_K)"))
        test_fail("IQ4_XS should be unsupported: %s", err_msg());
    gguf_close(&f);
    free(b.p);
}

static void test_damage(void) {
    buf b = good_file();
    for (size_t cut = 0; cut < b.n; cut++) {
        write_buf(&b, cut);
        gguf_file f;
        if (gguf_open(&f, path) == 0) test_fail("opened a file cut at %zu of %zu bytes", cut, b.n);
    }
    srand(11);
    uint8_t *orig = malloc(b.n);
    memcpy(orig, b.p, b.n);
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(b.p, orig, b.n);
        for (int k = 0; k < 2; k++) b.p[(size_t)rand() % b.n] ^= (uint8_t)(1 << (rand() % 8));
        write_buf(&b, b.n);
        gguf_file f;
        if (gguf_open(&f, path) != 0) continue;
        // Whatever parsed must be readable through the accessors without leaving the file.
        for (int64_t i = 0; i < f.n_kv; i++) {
            const gguf_kv *kv = &f.kvs[i];
            for (uint64_t j = 0; kv->type == GGUF_TYPE_ARRAY && j < kv->n && j < 8; j++) {
                int64_t v;
                double x;
                const char *s;
                size_t len;
                if (gguf_arr_str(&f, kv, j, &s, &len) == 0 &&
                    (const uint8_t *)s + len > f.map.data + f.map.size)
                    test_fail("string outside the file");
                (void)gguf_arr_int(&f, kv, j, &v);
                (void)gguf_arr_float(&f, kv, j, &x);
            }
        }
        for (int64_t i = 0; i < f.n_tensors; i++) {
            const gguf_tensor *t = &f.tensors[i];
            if (t->data + t->n_bytes > f.map.data + f.map.size) test_fail("tensor outside the file");
            if (quant_can_dequantize(t->type) && t->n_elements <= 1024) {
                float *out = malloc(t->n_elements * sizeof *out + 1);
                (void)gguf_tensor_to_f32(&f, t, out);
                free(out);
            }
        }
        gguf_close(&f);
    }
    free(orig);
    free(b.p);
}

int main(void) {
    if (!mkdtemp(dir)) test_fail("mkdtemp failed");
    snprintf(path, sizeof path, "%s/t.gguf", dir);
    test_header_checks();
    test_tensor_checks();
    test_good_file();
    test_damage();
    unlink(path);
    rmdir(dir);
    printf("gguf: header, metadata and tensor checks, accessors, damage ok\n");
    return 0;
}
