#!/usr/bin/env python3
"""formats/quant against gguf-py (pip `gguf`, the reference the GGUF format ships with).

usage: check_quant.py dequant|quantize|bad_input|bad_model

dequant:  for every type medtune decodes (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K,
          Q3_K, Q4_K, Q5_K, Q6_K), a GGUF of random-block tensors (random bytes for the quants
          and scale nibbles, sane fp16 super-block scales) read through gguf_open +
          gguf_tensor_to_f32 (tests/test_quant dump) equals gguf.quants.dequantize bit for bit.
quantize: medtune's quantizer on Gaussian rows with outliers. Types gguf-py can quantize (F16,
          BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1): the bytes equal gguf.quants.quantize (ggml's
          reference rounding), hence the same error. K-quants (Q4_K, Q5_K, Q6_K), which gguf-py
          cannot quantize: gguf-py dequantizes medtune's blocks bit for bit as medtune does,
          and the relative RMS error is below the bound of docs/formats.md and below that of
          gguf-py's Q4_1 / Q5_1 (more bits per weight) on the same rows.
bad_input: a truncated Q4_K tensor, an element count that is not a multiple of the block, and
          an unsupported type (IQ4_XS) each give one `medtune: error:` line naming the tensor
          and the type.
bad_model: the same through the model loader (`medtune info` on a llama GGUF with an IQ4_XS
          matrix, and on one cut inside its last Q8_0 tensor).
"""
import os
import struct
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import env, fail, skip, work_dir  # noqa: E402

try:
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf.quants import dequantize, quantize
except ImportError as e:
    skip(f"gguf-py with quants is not importable: {e}")

# Byte offsets of the fp16 scales inside each block (the rest of a block is quants and packed
# sub-block scales, for which any byte is valid).
HALF_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
FLOATS = [T.F32, T.F16, T.BF16]
# Relative RMS error bounds of the K-quant quantizers on gaussian_rows() (docs/formats.md), and
# the gguf-py reference type of more bits per weight whose error they must not exceed
# (Q4_K 4.5 bpw vs Q4_1 5.0, Q5_K 5.5 vs Q5_1 6.0).
K_BOUNDS = {T.Q4_K: (0.085, T.Q4_1), T.Q5_K: (0.044, T.Q5_1), T.Q6_K: (0.025, None)}


def test_bin():
    return os.path.join(env("MEDTUNE_TEST_BIN", "."), "test_quant")


def random_tensor(qt, rows, cols, rng):
    """Raw bytes (rows, bytes per row) of type qt with random quants and sane scales."""
    if qt == T.F32:
        return rng.standard_normal((rows, cols)).astype(np.float32), None
    if qt == T.F16:
        return rng.standard_normal((rows, cols)).astype(np.float16), None
    if qt == T.BF16:
        x = rng.standard_normal((rows, cols)).astype(np.float32)
        return (x.view(np.uint32) >> 16).astype(np.uint16), T.BF16
    block, size = gguf.GGML_QUANT_SIZES[qt]
    nb = rows * cols // block
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    for off in HALF_FIELDS[qt]:
        # |scale| in [2^-12, 2^-2], either sign: normal fp16 values as real files have.
        mag = np.exp2(rng.uniform(-12, -2, nb)) * rng.choice([-1.0, 1.0], nb)
        raw[:, off:off + 2] = mag.astype(np.float16).view(np.uint8).reshape(nb, 2)
    return raw.reshape(rows, cols // block * size), qt


def write_gguf(path, tensors):
    """tensors: (name, raw array, ggml type or None for a numpy float dtype)."""
    w = gguf.GGUFWriter(path, "llama")
    for name, raw, qt in tensors:
        if qt is None:
            w.add_tensor(name, raw)
        else:
            w.add_tensor(name, raw, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def dump(path, out_dir):
    p = subprocess.run([test_bin(), "dump", path, out_dir], capture_output=True, text=True)
    return p


def read_f32(out_dir, name):
    return np.fromfile(os.path.join(out_dir, name + ".f32"), dtype=np.float32)


def same_bits(a, b):
    a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
    b = np.ascontiguousarray(b, dtype=np.float32).reshape(-1)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def case_dequant():
    d = work_dir("formats", "quant_dequant")
    rng = np.random.default_rng(11)
    tensors, want = [], {}
    for qt in FLOATS + list(HALF_FIELDS):
        for rows, cols in [(3, 512), (1, 256)]:
            name = f"{qt.name.lower()}_{rows}x{cols}"
            raw, raw_type = random_tensor(qt, rows, cols, rng)
            tensors.append((name, raw, raw_type))
            ref = dequantize(raw.view(np.uint8) if raw_type == T.BF16 else raw,
                             qt if raw_type is not None else
                             (T.F16 if raw.dtype == np.float16 else T.F32))
            want[name] = ref.astype(np.float32).reshape(-1)
    path = os.path.join(d, "random_blocks.gguf")
    write_gguf(path, tensors)
    p = dump(path, d)
    if p.returncode != 0:
        fail(f"test_quant dump failed: {p.stderr}")
    for name, ref in want.items():
        got = read_f32(d, name)
        if not same_bits(got, ref):
            bad = np.flatnonzero(got.view(np.uint32) != ref.view(np.uint32))
            fail(f"{name}: {len(bad)} elements differ from gguf-py, first at {bad[0]}: "
                 f"medtune {got[bad[0]]!r} gguf-py {ref[bad[0]]!r}")
        print(f"ok: {name} equals gguf.quants.dequantize bit for bit ({got.size} elements)")


def gaussian_rows(rng, rows, cols):
    x = (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)
    # A few outliers per row, as trained weights have; they set the block scales.
    idx = rng.integers(0, cols, size=(rows, 4))
    np.put_along_axis(x, idx, (rng.standard_normal((rows, 4)) * 0.2).astype(np.float32), axis=1)
    # A row of zeros and a constant row: degenerate blocks.
    x[0, :256] = 0.0
    x[1, :256] = 0.01
    return x


def medtune_quantize(d, qt, x):
    src, dst = os.path.join(d, "in.f32"), os.path.join(d, f"out.{qt.name}")
    x.astype(np.float32).tofile(src)
    p = subprocess.run([test_bin(), "quantize", qt.name, src, dst], capture_output=True,
                       text=True)
    if p.returncode != 0:
        fail(f"test_quant quantize {qt.name}: {p.stdout}{p.stderr}")
    block, size = gguf.GGML_QUANT_SIZES[qt]
    return np.fromfile(dst, dtype=np.uint8).reshape(x.shape[0], x.shape[1] // block * size)


def rel_rms(y, x):
    return float(np.sqrt(np.mean((y.astype(np.float64) - x) ** 2) / np.mean(x.astype(np.float64) ** 2)))


def case_quantize():
    d = work_dir("formats", "quant_quantize")
    rng = np.random.default_rng(5)
    x = gaussian_rows(rng, 8, 1024)
    written = []
    for qt in [T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]:
        got = medtune_quantize(d, qt, x)
        ref = quantize(x, qt)
        ref = ref.view(np.uint8).reshape(got.shape)
        if not np.array_equal(got, ref):
            rows = np.flatnonzero((got != ref).any(axis=1))
            fail(f"{qt.name}: medtune's bytes differ from gguf.quants.quantize in rows {rows}")
        err = rel_rms(dequantize(got, qt).reshape(x.shape), x)
        print(f"ok: {qt.name} bytes equal gguf.quants.quantize (relative RMS error {err:.5f})")
        written.append((f"mt_{qt.name.lower()}", got, qt))
    ref_err = {qt: rel_rms(dequantize(quantize(x, qt), qt).reshape(x.shape), x)
               for qt in (T.Q4_1, T.Q5_1)}
    for qt, (bound, peer) in K_BOUNDS.items():
        got = medtune_quantize(d, qt, x)
        y = dequantize(got, qt).reshape(x.shape)
        if not np.array_equal(y[0, :256], np.zeros(256, np.float32)):
            fail(f"{qt.name}: a block of zeros does not decode to zeros")
        err = rel_rms(y, x)
        if err > bound:
            fail(f"{qt.name}: relative RMS error {err:.5f} above the documented bound {bound}")
        if peer is not None and err > ref_err[peer]:
            fail(f"{qt.name}: relative RMS error {err:.5f} above gguf-py's {peer.name} "
                 f"({ref_err[peer]:.5f})")
        print(f"ok: {qt.name} relative RMS error {err:.5f} <= {bound}"
              + (f" and <= gguf-py {peer.name} {ref_err[peer]:.5f}" if peer is not None else ""))
        written.append((f"mt_{qt.name.lower()}", got, qt))
    # medtune-quantized tensors decode the same in medtune and gguf-py.
    path = os.path.join(d, "medtune_quantized.gguf")
    write_gguf(path, written)
    p = dump(path, d)
    if p.returncode != 0:
        fail(f"test_quant dump failed: {p.stderr}")
    for name, raw, qt in written:
        if not same_bits(read_f32(d, name), dequantize(raw, qt)):
            fail(f"{name}: medtune's dequantization of its own blocks differs from gguf-py")
    print(f"ok: {len(written)} medtune-quantized tensors decode bit for bit as gguf-py does")


def expect_one_error(path, d, *needles):
    p = dump(path, d)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    if p.returncode != 1 or len(lines) != 1 or not lines[0].startswith("medtune: error: "):
        fail(f"{path}: expected exit 1 and one error line, got {p.returncode}: {p.stderr}")
    for n in needles:
        if n not in lines[0]:
            fail(f"{path}: the error does not name {n!r}: {lines[0]}")
    print(f"ok: {lines[0]}")


def case_bad_input():
    d = work_dir("formats", "quant_bad_input")
    rng = np.random.default_rng(3)
    raw, qt = random_tensor(T.Q4_K, 2, 512, rng)
    good = os.path.join(d, "good.gguf")
    write_gguf(good, [("blk.0.attn_q.weight", raw, qt)])
    data = open(good, "rb").read()
    # Truncated: the last block loses its final bytes.
    cut = os.path.join(d, "truncated.gguf")
    open(cut, "wb").write(data[:-40])
    expect_one_error(cut, d, "truncated.gguf", "blk.0.attn_q.weight", "Q4_K", "truncated")
    # ne[0] = 500 (not a multiple of 256): patch the tensor info's first dimension.
    name = b"blk.0.attn_q.weight"
    at = data.index(name) + len(name)
    n_dims, ne0 = struct.unpack_from("<IQ", data, at)
    if n_dims != 2 or ne0 != 512:
        fail(f"unexpected tensor info layout: n_dims {n_dims} ne0 {ne0}")
    odd = bytearray(data)
    struct.pack_into("<Q", odd, at + 4, 500)
    path = os.path.join(d, "odd_count.gguf")
    open(path, "wb").write(odd)
    expect_one_error(path, d, "blk.0.attn_q.weight", "Q4_K", "500", "block size 256")
    # Unsupported type: IQ4_XS blocks (valid size, no dequantizer), named with the nearest type.
    iq = rng.integers(0, 256, size=(2, 2 * 136), dtype=np.uint8)
    path = os.path.join(d, "iq4_xs.gguf")
    write_gguf(path, [("blk.0.ffn_up.weight", iq, T.IQ4_XS)])
    expect_one_error(path, d, "blk.0.ffn_up.weight", "tensor type IQ4_XS is not supported",
                     "nearest supported: Q4_K")


def case_bad_model():
    """The loader path: `medtune info` on a llama GGUF whose blk.1.ffn_up.weight is IQ4_XS, and
    on the same model cut inside its last (Q8_0) tensor."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "export"))
    from merge_gguf_lib import QSPEC, fresh_model, write_base
    from testlib import expect_error
    d = work_dir("formats", "quant_bad_model")
    model = fresh_model(os.path.join(d, "llama"), QSPEC)
    base = write_base(model, os.path.join(d, "q8_0.gguf"), T.Q8_0)
    r = gguf.GGUFReader(base)
    w = gguf.GGUFWriter(os.path.join(d, "iq4_xs.gguf"), "llama")
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        sub = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(k, f.contents(), f.types[0], sub_type=sub)
    rng = np.random.default_rng(9)
    for t in r.tensors:
        rows = int(t.shape[1]) if len(t.shape) > 1 else 1
        if t.name == "blk.1.ffn_up.weight":
            raw = rng.integers(0, 256, size=(rows, int(t.shape[0]) // 256 * 136), dtype=np.uint8)
            w.add_tensor(t.name, raw, raw_dtype=T.IQ4_XS)
        elif t.tensor_type == T.F32:
            w.add_tensor(t.name, np.asarray(t.data))
        else:
            w.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expect_error(["info", os.path.join(d, "iq4_xs.gguf")], "iq4_xs.gguf", "blk.1.ffn_up.weight",
                 "tensor type IQ4_XS is not supported (nearest supported: Q4_K)")
    data = open(base, "rb").read()
    last = r.tensors[-1]
    cut = os.path.join(d, "cut.gguf")
    open(cut, "wb").write(data[:-100])
    expect_error(["info", cut], "cut.gguf", last.name, last.tensor_type.name, "truncated")


CASES = {"dequant": case_dequant, "quantize": case_quantize, "bad_input": case_bad_input,
         "bad_model": case_bad_model}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        fail(f"usage: check_quant.py {'|'.join(CASES)}")
    CASES[sys.argv[1]]()
