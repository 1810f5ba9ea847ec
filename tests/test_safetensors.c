// safetensors reader: every header check on crafted files, truncations and byte flips of a
// valid file (must fail cleanly, never crash), and a writer -> reader round trip.
// With `--write PATH` it writes a fixed file that tests/load/check_st_writer.py reads with
// the `safetensors` Python package.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fileio.h"
#include "formats/halfconv.h"
#include "formats/safetensors.h"
#include "tests/testlib.h"

static char dir[] = "/tmp/medtune_st_XXXXXX";
static char path[4200];

static void write_bytes(const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) test_fail("cannot write %s", path);
}

// A file with the given header JSON and `data_len` data bytes (values i % 251).
static void write_st(const char *header, size_t data_len) {
    size_t h = strlen(header);
    uint8_t *buf = calloc(8 + h + data_len + 1, 1);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    for (size_t i = 0; i < data_len; i++) buf[8 + h + i] = (uint8_t)(i % 251);
    write_bytes(buf, 8 + h + data_len);
    free(buf);
}

static void expect_error(const char *what, const char *header, size_t data_len,
                         const char *needle) {
    write_st(header, data_len);
    st_file f;
    if (safetensors_open(&f, path) == 0) test_fail("%s: opened a bad file", what);
    const char *msg = err_msg();
    if (strncmp(msg, path, strlen(path)) != 0 || !strstr(msg, needle))
        test_fail("%s: error '%s' lacks the file name or '%s'", what, msg, needle);
    if (strchr(msg, '\n')) test_fail("%s: error spans lines", what);
}

static void test_header_checks(void) {
    write_bytes("abc", 3);
    st_file f;
    if (safetensors_open(&f, path) == 0 || !strstr(err_msg(), "too short"))
        test_fail("short file: %s", err_msg());
    uint8_t lie[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(lie, 10);
    if (safetensors_open(&f, path) == 0 || !strstr(err_msg(), "header length"))
        test_fail("header length: %s", err_msg());
    expect_error("json", "{\"a\": {", 0, "not valid JSON");
    expect_error("root", "[1, 2]", 0, "not a JSON object");
    expect_error("trailing", "{} x", 0, "trailing");
    expect_error("dtype", "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
                 "w: unknown dtype 'F8_E4M3'");
    expect_error("no dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "w: dtype");
    expect_error("no shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "w: shape");
    expect_error("neg shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
                 "w: shape[0]");
    expect_error("frac shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}",
                 8, "w: shape[0]");
    expect_error("size", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                 "w: data_offsets span 8 bytes but F32 shape needs 12");
    expect_error("offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8,
                 "w: data_offsets");
    expect_error("reversed", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8,
                 "w: data_offsets [8, 0] end before begin");
    expect_error("gap",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                 12, "b: gap");
    expect_error("overlap",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                 8, "overlap");
    expect_error("short data", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                 12, "w: data_offsets end at 16 but the data buffer holds 12");
    expect_error("long data", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12,
                 "tensors cover 8 bytes but the data buffer holds 12");
    expect_error("meta type", "{\"__metadata__\":{\"format\":1}}", 0, "__metadata__: format");
    expect_error("meta obj", "{\"__metadata__\":[]}", 0, "__metadata__: not an object");
    expect_error("duplicate",
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                 8, "a: duplicate");
    expect_error("dims", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                 "\"data_offsets\":[0,1]}}", 1, "w: 9 dimensions");
    expect_error("overflow", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                 "\"data_offsets\":[0,8]}}", 8, "w: shape overflows");
}

static const char *GOOD =
    "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\"},"
    "\"f32\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
    "\"i64\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]},"
    "\"f16\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[24,30]},"
    "\"bf16\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[30,32]},"
    "\"empty\":{\"dtype\":\"I32\",\"shape\":[0,5],\"data_offsets\":[32,32]},"
    "\"u8\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[32,35]}}  ";

static void test_good_file(void) {
    write_st(GOOD, 35);
    st_file f;
    if (safetensors_open(&f, path) != 0) test_fail("good file: %s", err_msg());
    if (f.n_tensors != 6) test_fail("expected 6 tensors, got %d", f.n_tensors);
    const st_tensor *t = safetensors_find(&f, "f16");
    if (!t || t->dtype != ST_F16 || t->n_dims != 1 || t->shape[0] != 3 || t->n_bytes != 6)
        test_fail("f16 entry wrong");
    float out[4];
    if (st_tensor_to_f32(&f, t, out) != 0) test_fail("%s", err_msg());
    for (int i = 0; i < 3; i++) {
        uint16_t h = (uint16_t)(t->data[2 * i] | t->data[2 * i + 1] << 8);
        if (out[i] != fp16_to_f32(h)) test_fail("f16 element %d", i);
    }
    t = safetensors_find(&f, "bf16");
    if (!t || t->n_dims != 0 || t->n_elements != 1) test_fail("scalar entry wrong");
    t = safetensors_find(&f, "empty");
    if (!t || t->n_elements != 0) test_fail("empty entry wrong");
    t = safetensors_find(&f, "u8");
    if (!t || t->data[0] != 32 % 251) test_fail("u8 data pointer wrong");
    if (st_tensor_to_f32(&f, t, out) == 0 || !strstr(err_msg(), "u8: dtype U8"))
        test_fail("U8 to f32 should fail: %s", err_msg());
    if (safetensors_find(&f, "nope")) test_fail("found a missing tensor");
    const char *fmt = safetensors_metadata(&f, "format");
    if (!fmt || strcmp(fmt, "pt") || safetensors_metadata(&f, "other"))
        test_fail("metadata lookup wrong");
    safetensors_close(&f);
}

// A valid file cut at every length, and with bytes flipped: errors, never crashes.
static void test_damage(void) {
    write_st(GOOD, 35);
    char *buf;
    size_t len;
    if (file_read_all(path, &buf, &len) != 0) test_fail("%s", err_msg());
    for (size_t cut = 0; cut < len; cut++) {
        write_bytes(buf, cut);
        st_file f;
        if (safetensors_open(&f, path) == 0) test_fail("opened a file cut at %zu bytes", cut);
    }
    srand(7);
    for (int iter = 0; iter < 2000; iter++) {
        char *copy = malloc(len);
        memcpy(copy, buf, len);
        for (int k = 0; k < 3; k++) copy[(size_t)rand() % len] ^= (char)(1 << (rand() % 8));
        write_bytes(copy, len);
        st_file f;
        if (safetensors_open(&f, path) == 0) {
            for (int i = 0; i < f.n_tensors; i++)
                if (f.tensors[i].data + f.tensors[i].n_bytes > f.map.data + f.map.size)
                    test_fail("tensor outside the mapping after a byte flip");
            safetensors_close(&f);
        }
        free(copy);
    }
    free(buf);
}

// Tensors shared by the round trip and the file checked by Python.
typedef struct {
    float f32[6];
    int32_t i32[5];
    int64_t i64[3];
    uint16_t f16[4], bf16[4];
    uint8_t u8[3];
} fixture;

static int fixture_tensors(fixture *x, st_write_tensor *t) {
    static const float vals[4] = {1.0f, -2.5f, 3.14159265f, 1e-7f};
    for (int i = 0; i < 6; i++) x->f32[i] = 0.5f * (float)i - 1.0f;
    for (int i = 0; i < 5; i++) x->i32[i] = i - 2;
    for (int i = 0; i < 3; i++) x->i64[i] = (int64_t)1 << (40 + i);
    for (int i = 0; i < 4; i++) x->f16[i] = f32_to_fp16(vals[i]), x->bf16[i] = f32_to_bf16(vals[i]);
    for (int i = 0; i < 3; i++) x->u8[i] = (uint8_t)(200 + i);
    t[0] = (st_write_tensor){"z.f32", ST_F32, 2, {2, 3}, x->f32};
    t[1] = (st_write_tensor){"a.u8", ST_U8, 1, {3}, x->u8};
    t[2] = (st_write_tensor){"m.i32", ST_I32, 1, {5}, x->i32};
    t[3] = (st_write_tensor){"b.f16", ST_F16, 2, {2, 2}, x->f16};
    t[4] = (st_write_tensor){"c.i64", ST_I64, 1, {3}, x->i64};
    t[5] = (st_write_tensor){"d.bf16", ST_BF16, 1, {4}, x->bf16};
    t[6] = (st_write_tensor){"scalar \"quoted\"", ST_F32, 0, {0}, x->f32};
    return 7;
}

static const st_meta META[] = {{"format", "pt"}, {"a_key", "line\nbreak"}};

static void test_round_trip(void) {
    fixture x;
    st_write_tensor t[8];
    int n = fixture_tensors(&x, t);
    if (safetensors_write(path, t, n, META, 2) != 0) test_fail("write: %s", err_msg());
    st_file f;
    if (safetensors_open(&f, path) != 0) test_fail("reading the written file: %s", err_msg());
    if (f.n_tensors != n) test_fail("round trip: %d tensors", f.n_tensors);
    for (int i = 0; i < n; i++) {
        const st_tensor *r = safetensors_find(&f, t[i].name);
        if (!r || r->dtype != t[i].dtype || r->n_dims != t[i].n_dims)
            test_fail("round trip: %s header differs", t[i].name);
        for (int d = 0; d < r->n_dims; d++)
            if (r->shape[d] != t[i].shape[d]) test_fail("round trip: %s shape", t[i].name);
        if (memcmp(r->data, t[i].data, r->n_bytes) != 0) test_fail("round trip: %s data", t[i].name);
        size_t off = (size_t)(r->data - f.map.data);
        if (off % st_dtype_size(r->dtype) != 0) test_fail("%s is misaligned at %zu", r->name, off);
    }
    if (strcmp(safetensors_metadata(&f, "a_key"), "line\nbreak") ||
        strcmp(safetensors_metadata(&f, "format"), "pt"))
        test_fail("round trip: metadata");
    uint64_t hlen = 0;
    memcpy(&hlen, f.map.data, 8);
    if (hlen % 8 != 0) test_fail("header length %llu is not a multiple of 8", (unsigned long long)hlen);
    // Keys sorted: __metadata__ first, then names in byte order.
    static const char *const ORDER[] = {"\"__metadata__\"", "\"a.u8\"", "\"b.f16\"",
                                        "\"c.i64\"", "\"d.bf16\"", "\"m.i32\"",
                                        "\"scalar \\\"quoted\\\"\"", "\"z.f32\""};
    char *header = strndup((const char *)f.map.data + 8, (size_t)hlen);
    const char *prev = header;
    for (size_t i = 0; i < sizeof ORDER / sizeof ORDER[0]; i++) {
        const char *at = strstr(header, ORDER[i]);
        if (!at || at < prev) test_fail("header keys not sorted at %s: %s", ORDER[i], header);
        prev = at;
    }
    free(header);
    safetensors_close(&f);
    st_write_tensor dup[2] = {t[0], t[0]};
    if (safetensors_write(path, dup, 2, NULL, 0) == 0 || !strstr(err_msg(), "duplicate"))
        test_fail("duplicate names accepted: %s", err_msg());
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write")) {
        fixture x;
        st_write_tensor t[8];
        int n = fixture_tensors(&x, t);
        if (safetensors_write(argv[2], t, n, META, 2) != 0) test_fail("%s", err_msg());
        return 0;
    }
    if (!mkdtemp(dir)) test_fail("mkdtemp failed");
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    test_header_checks();
    test_good_file();
    test_damage();
    test_round_trip();
    unlink(path);
    rmdir(dir);
    printf("safetensors: header checks, damage, round trip ok\n");
    return 0;
}
