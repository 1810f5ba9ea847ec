#!/usr/bin/env python3
"""`medtune merge BASE.gguf ADAPTER OUT.gguf --type T` read back with gguf-py and compared with a
reference merge computed here in float64 from the GGUF base (gguf-py dequantize) and the PEFT
files (W + scale * B A, Q/K delta rows permuted as convert_hf_to_gguf permutes Q/K):

- every metadata key of the base is copied with its value (general.alignment dropped,
  general.file_type set for a single --type), tensors keep names, order and shapes, vectors
  are F32 and matrices of the --type;
- f32: every merged weight equals the reference within fp32 rounding; unchanged tensors are
  copied byte for byte;
- f16 / q8_0 / q4_k: each merged matrix is within one rounding step of the type from the
  reference (F16: half an ulp; Q8_0: half a block step; Q4_K: the relative error bound of
  docs/formats.md), and closer to base + delta than to the base: the merge happened in fp32
  before the single quantization;
- same on a Q8_0 base: unchanged matrices are byte copies, adapted ones Q8_0.

usage: check_merge_gguf.py types|same_q8_0|refuse
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_lib import SPEC, fail, run, work_dir  # noqa: E402
from testlib import expect_error  # noqa: E402
from merge_gguf_lib import (Q, dequantize, gguf, random_base, reference_merge,  # noqa: E402
                            trained_adapter)

TYPES = {"f32": Q.F32, "f16": Q.F16, "q8_0": Q.Q8_0, "q4_k": Q.Q4_K}
FILE_TYPE = {"f32": 0, "f16": 1, "q8_0": 7, "q4_k": 14}


def fields(r):
    """{key: (types, [raw parts])} of a GGUFReader, without the GGUF.* header fields."""
    return {k: (f.types, [bytes(p.tobytes()) for p in f.parts])
            for k, f in r.fields.items() if not k.startswith("GGUF.")}


def check_metadata(base, out, file_type):
    b, o = fields(gguf.GGUFReader(base)), fields(gguf.GGUFReader(out))
    for k, v in b.items():
        if k in ("general.alignment", "general.file_type"):
            continue
        if k not in o or o[k] != v:
            fail(f"{out}: metadata {k} is not copied from the base")
    extra = set(o) - set(b) - {"general.file_type"}
    if extra:
        fail(f"{out}: unexpected metadata {sorted(extra)}")
    if file_type is not None:
        got = int(gguf.GGUFReader(out).fields["general.file_type"].parts[-1][0])
        if got != file_type:
            fail(f"{out}: general.file_type {got}, expected {file_type}")
    print(f"ok: {os.path.basename(out)}: {len(b)} metadata keys copied (tokenizer included)")


def tensors(path):
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def as_f32(t):
    return dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)])


def check_merged(base, out, ref, qtype, adapted):
    bt, ot = tensors(base), tensors(out)
    if list(bt) != list(ot):
        fail(f"{out}: tensor names or order differ from the base")
    closer = []
    for name, t in ot.items():
        b = bt[name]
        if list(t.shape) != list(b.shape):
            fail(f"{name}: shape {list(t.shape)}, base {list(b.shape)}")
        vector = len(b.shape) == 1 or int(b.shape[1]) == 1
        want_type = Q.F32 if vector else qtype
        if want_type is not None and t.tensor_type != want_type:
            fail(f"{name}: {t.tensor_type.name}, expected {want_type.name}")
        got, r = as_f32(t), ref[name]
        if name not in adapted and t.tensor_type == b.tensor_type:
            if not np.array_equal(t.data, b.data):
                fail(f"{name}: unchanged tensor is not a byte copy of the base")
            continue
        diff = np.abs(got.astype(np.float64) - r)
        scale = np.abs(r).max()
        kind = t.tensor_type
        if kind == Q.F32:
            ok = diff.max() <= 1e-6 * scale
        elif kind == Q.F16:
            ok = np.all(diff <= np.abs(r) * 2.0 ** -11 + 2.0 ** -24 + 1e-7 * scale)
        elif kind == Q.Q8_0:
            # Half a step of the block scale d = max|x| / 127, plus fp16 rounding of d.
            blocks = np.abs(r).reshape(-1, 32).max(axis=1) / 127.0
            ok = np.all(diff.reshape(-1, 32) <= (0.5 + 2.0 ** -9 * 127) * blocks[:, None] + 1e-7)
        else:
            rel = np.sqrt((diff ** 2).mean() / (r.astype(np.float64) ** 2).mean())
            ok = rel <= 0.085
        if not ok:
            fail(f"{name} ({kind.name}): max |merged - reference| {diff.max():g} is beyond the "
                 f"type's rounding")
        if name not in adapted:
            continue
        base_f32 = as_f32(b).astype(np.float64)
        closer.append((np.linalg.norm(got - r), np.linalg.norm(got - base_f32)))
    to_ref = sum(c[0] for c in closer)
    to_base = sum(c[1] for c in closer)
    print(f"ok: {os.path.basename(out)}: {len(closer)} merged matrices within the rounding of "
          f"the type; sum |out - (base + delta)| {to_ref:.4g}, sum |out - base| {to_base:.4g}")
    if qtype in (Q.F32, Q.F16, Q.Q8_0) and not to_ref < to_base:
        fail(f"{out}: the merged weights are not closer to base + delta than to the base")


def adapted_names(ref_base, ref_merged):
    return {n for n in ref_merged if not np.array_equal(ref_base[n], ref_merged[n])}


def case_types():
    work = work_dir("merge_gguf_types")
    model, base = random_base(work)
    adapter = trained_adapter(work, model)
    ref = reference_merge(base, adapter)
    plain = {t.name: as_f32(t) for t in gguf.GGUFReader(base).tensors}
    adapted = adapted_names(plain, ref)
    if len(adapted) != 14:
        fail(f"expected 14 adapted matrices (7 targets x 2 layers), found {len(adapted)}")
    for name, qtype in TYPES.items():
        out = os.path.join(work, f"merged_{name}.gguf")
        run(["merge", base, adapter, out, "--type", name])
        check_metadata(base, out, FILE_TYPE[name])
        check_merged(base, out, ref, qtype, adapted)
    # Rows are quantized in parallel: one thread writes the same bytes.
    one = os.path.join(work, "merged_q4_k_1thread.gguf")
    import subprocess
    from testlib import medtune_bin
    subprocess.run([medtune_bin(), "merge", base, adapter, one, "--type", "q4_k"], check=True,
                   env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True)
    if open(one, "rb").read() != open(os.path.join(work, "merged_q4_k.gguf"), "rb").read():
        fail("--type q4_k with OMP_NUM_THREADS=1 differs from the multi-threaded merge")
    print("ok: q4_k merge with 1 thread is byte-identical")
    out = os.path.join(work, "merged_same.gguf")
    run(["merge", base, adapter, out])
    check_metadata(base, out, None)
    check_merged(base, out, ref, None, adapted)
    print("PASS")


def case_same_q8_0():
    work = work_dir("merge_gguf_same_q8_0")
    model, _ = random_base(work)
    from merge_gguf_lib import write_base
    base = write_base(model, os.path.join(work, "base_q8_0.gguf"), Q.Q8_0)
    adapter = trained_adapter(work, model)
    ref = reference_merge(base, adapter)
    plain = {t.name: as_f32(t) for t in gguf.GGUFReader(base).tensors}
    out = os.path.join(work, "merged.gguf")
    run(["merge", base, adapter, out, "--type", "same"])
    check_metadata(base, out, None)
    check_merged(base, out, ref, None, adapted_names(plain, ref))
    for t in gguf.GGUFReader(out).tensors:
        if len(t.shape) == 2 and t.tensor_type != Q.Q8_0:
            fail(f"{t.name}: {t.tensor_type.name}, the base's type is Q8_0")
    print("PASS")


def case_refuse():
    work = work_dir("merge_gguf_refuse")
    # SPEC's hidden size 60 does not fill 256-element blocks.
    from export_lib import fresh_model
    from merge_gguf_lib import write_base
    model = fresh_model(os.path.join(work, "odd_llama"), SPEC)
    base = write_base(model, os.path.join(work, "base.gguf"))
    adapter = trained_adapter(work, model)
    out = os.path.join(work, "merged.gguf")
    expect_error(["merge", base, adapter, out, "--type", "q4_k"], "base.gguf",
                      "token_embd.weight", "60 elements", "Q4_K", "blocks of 256")
    if any(f.startswith("merged") for f in os.listdir(work)):
        fail(f"a refused merge left a file behind: {os.listdir(work)}")
    run(["merge", base, adapter, out, "--type", "q8_0"], expect=1)  # 60 % 32 != 0 as well
    run(["merge", base, adapter, out, "--type", "f16"])
    expect_error(["merge", base, adapter, out, "--type", "f16"], "merged.gguf",
                      "already exists")
    expect_error(["merge", model, adapter, os.path.join(work, "hf.gguf")], "needs a GGUF base")
    p = run(["merge", base, adapter, os.path.join(work, "dir_out"), "--type", "q8_0"], expect=2)
    if "--type applies to a .gguf output" not in p.stderr:
        fail(f"--type with a directory output: {p.stderr}")
    print("PASS")


CASES = {"types": case_types, "same_q8_0": case_same_q8_0, "refuse": case_refuse}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        fail(f"usage: check_merge_gguf.py {'|'.join(CASES)}")
    CASES[sys.argv[1]]()
