#!/usr/bin/env python3
"""llama.cpp (the build of tools/llama_cpp.sh, cached in .cache/llama.cpp) loads the GGUF files
`medtune merge BASE.gguf ADAPTER OUT.gguf --type T` writes and gives the logits of base + adapter.

usage: check_merge_llama_cpp.py random|smollm2|quantizer|phi3|gpt2

random:  a random-weight llama (hidden 256, GQA) written as an F32 GGUF base, a trained medtune
         adapter, merged with --type f32, f16, q8_0 and q4_k. For each file, llama.cpp's
         logits of the fixed test batch (tests/test_export_logits.c) are compared with
         (a) medtune's fp32 eval of base + adapter (the unmerged reference), within TOL[T] x
             the logits' RMS (f32 1e-5: summation order only, which also proves the Q/K
             permutation of the delta; f16 2e-3, q8_0 0.03, q4_k 0.25: the logit error the
             type's weight rounding causes plus llama.cpp's 8-bit rounding of activations in
             quantized matmuls, measured on this model, with margin);
         (b) the base alone: the merged logits must be closer to base + adapter than to the
             base (the adapter survived the quantization), and for f32/f16/q8_0 at least 4x
             closer than the base's logits are, so a lost or mis-permuted delta fails;
         (c) medtune's own eval of the same merged file: the two engines agree on identical
             weights (TOL_SAME[T] x RMS: llama.cpp's activation rounding only).
         llama.cpp runs with an F32 KV cache and without flash attention.
smollm2: the real SmolLM2-135M-Instruct Q4_1 GGUF merged with a random adapter (--type same:
         Q4_1 kept, adapted matrices requantized to Q4_1; and --type q8_0) loads in llama.cpp;
         its logits match medtune's fp32 eval of base + adapter within TOL_SMOLLM2 x RMS; the
         q8_0 file's are closer to it than to the base's (for Q4_1 the requantization of
         W + delta moves the logits about as much as the random adapter does).
phi3, gpt2: a random-weight GGUF base of that architecture laid out as llama.cpp's converter
         writes it (tests/arch/arch_fresh.py: phi3's fused attn_qkv and [gate; up] ffn_up,
         partial rotary; gpt2's fused attn_qkv with bias, Conv1D weights transposed to [out,
         in], learned positions) and a random adapter on every module the architecture has
         (qkv_proj o_proj gate_up_proj down_proj; c_attn c_proj c_fc), merged with --type f32,
         f16, q8_0 and q4_k. medtune's own logits of the f32 merge equal its base + adapter
         logits (test_export_logits compare, TOL_ARCH_F32_MEDTUNE); llama.cpp's logits of each
         merge are compared with base + adapter as in `random` (tolerances TOL_ARCH).
quantizer: medtune's K-quant quantizers against llama.cpp's own (ggml_quantize_chunk from the
         built libggml, reference path without importance matrix) on the same Gaussian rows
         with outliers: medtune's relative RMS error is at most 1.05x llama.cpp's.
Skips with the reason when the llama.cpp build is absent (run tools/llama_cpp.sh).
"""
import ctypes
import glob
import importlib
import os
import sys
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_lib import (BATCH, SEQ, env, fail, medtune_logits, random_adapter, run, skip,  # noqa: E402
                        smollm2, test_tokens, work_dir)

LOG = []  # llama.cpp's log lines, shown when it fails to load a file
_KEEP = []  # the ctypes log callback must outlive every call into the library
# Tolerances, x the RMS of the reference logits, measured on the random llama (RMS 1.0) with
# at least 1.5x margin: vs base + adapter, the weight rounding of the type plus llama.cpp's 8-bit
# rounding of activations in quantized matmuls (measured f32 6.7e-7, f16 6.3e-4, q8_0 0.017,
# q4_k 0.164); between the two engines on the same file, that activation rounding alone
# (6.8e-7, 4.0e-4, 0.0116, 0.0171).
TOL = {"f32": 1e-5, "f16": 2e-3, "q8_0": 0.03, "q4_k": 0.25}
# SmolLM2 (30 layers, logits RMS 13.2): measured 0.066 (Q4_1 requantized) and 0.031 (Q8_0 from
# Q4_1 + delta); the two engines already differ by 0.019 on the unmerged base (printed).
TOL_SMOLLM2 = {"same": 0.12, "q8_0": 0.05}
TOL_SAME = {"f32": 1e-5, "f16": 1e-3, "q8_0": 0.02, "q4_k": 0.03}
# Types fine enough that the merged logits must be 4x closer to base + adapter than the base's.
FINE = ("f32", "f16", "q8_0")


def cache_dir():
    d = os.path.join(env("MEDTUNE_CACHE", os.path.join(os.path.dirname(__file__), "../../.cache")),
                     "llama.cpp")
    if not os.path.exists(os.path.join(d, "OK")):
        skip(f"llama.cpp build {d} is absent (tools/llama_cpp.sh builds it)")
    return d


def llama_cpp_module():
    """llama-cpp-python's ctypes binding (llama_cpp/llama_cpp.py of the sdist) over the cached
    libllama.so. The package's __init__ (high-level API, extra dependencies) is not run."""
    d = cache_dir()
    bindir = os.path.join(d, "build", "bin")
    os.environ["LLAMA_CPP_LIB_PATH"] = bindir
    # libllama's RUNPATH is the directory it was built in, which a cache copied or linked from
    # another checkout does not have: its ggml libraries are loaded first, by path (a library
    # already loaded satisfies a NEEDED entry of the same soname).
    for name in ("libggml-base.so.0", "libggml-cpu.so.0", "libggml.so.0"):
        ctypes.CDLL(os.path.join(bindir, name), mode=ctypes.RTLD_GLOBAL)
    pkg = types.ModuleType("llama_cpp")
    pkg.__path__ = [os.path.join(d, "src", "llama_cpp")]
    sys.modules["llama_cpp"] = pkg
    lib = importlib.import_module("llama_cpp.llama_cpp")
    def log(level, text, data):
        LOG.append(text.decode(errors="replace"))
    _KEEP.append(lib.llama_log_callback(log))
    lib.llama_log_set(_KEEP[-1], None)
    lib.llama_backend_init()
    return lib


def llama_cpp_logits(L, path):
    """Logits [B*T, V] of the fixed test batch, each row its own sequence, from llama.cpp."""
    mp = L.llama_model_default_params()
    mp.n_gpu_layers = 0
    model = L.llama_model_load_from_file(path.encode(), mp)
    if not model:
        fail(f"llama.cpp could not load {path}:\n{''.join(LOG[-20:])}")
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    tokens = test_tokens(n_vocab)
    out = np.zeros((BATCH * SEQ, n_vocab), np.float32)
    for b in range(BATCH):
        cp = L.llama_context_default_params()
        cp.n_ctx = 64
        cp.n_batch = cp.n_ubatch = SEQ
        cp.n_threads = cp.n_threads_batch = 2
        # An F32 KV cache and no flash attention: llama.cpp's defaults (F16 cache) would round
        # K and V to fp16 and hide small differences behind 5e-4 of noise.
        cp.type_k = cp.type_v = 0
        cp.flash_attn_type = 0
        ctx = L.llama_init_from_model(model, cp)
        if not ctx:
            fail(f"llama.cpp could not make a context for {path}")
        batch = L.llama_batch_init(SEQ, 0, 1)
        batch.n_tokens = SEQ
        for j in range(SEQ):
            batch.token[j] = int(tokens[b, j])
            batch.pos[j] = j
            batch.n_seq_id[j] = 1
            batch.seq_id[j][0] = 0
            batch.logits[j] = 1
        if L.llama_decode(ctx, batch) != 0:
            fail(f"llama_decode failed on {path}")
        for j in range(SEQ):
            p = L.llama_get_logits_ith(ctx, j)
            out[b * SEQ + j] = np.ctypeslib.as_array(p, shape=(n_vocab,))
        L.llama_batch_free(batch)
        L.llama_free(ctx)
    L.llama_model_free(model)
    return out


def rms(a):
    return float(np.sqrt(np.mean(np.asarray(a, np.float64) ** 2)))


def compare(label, got, want, base, tol, scale, fine, visible=True):
    err, moved, from_base = rms(got - want), rms(base - want), rms(got - base)
    print(f"{label}: RMS |llama.cpp - (base + adapter)| {err:.4g} (tolerance {tol * scale:.4g}), "
          f"|llama.cpp - base| {from_base:.4g}, the adapter moves the logits by {moved:.4g}")
    if err > tol * scale:
        fail(f"{label}: llama.cpp's logits differ from medtune's base + adapter by {err:.4g} RMS, "
             f"above {tol} x {scale:.4g}")
    if visible and not err < from_base:
        fail(f"{label}: the merged logits are closer to the base ({from_base:.4g}) than to base "
             f"+ adapter ({err:.4g}): the adapter is lost")
    if fine and not err * 4 < moved:
        fail(f"{label}: the merged logits are not 4x closer to base + adapter ({err:.4g}) than "
             f"the base's ({moved:.4g})")


def references(L, work, base, adapter, label=None):
    """medtune's logits of base + adapter and of the base alone, and the RMS of the first (the
    tolerances' unit); with a label, prints how far llama.cpp is from medtune on the base."""
    want = medtune_logits(work, base, adapter, "base_adapter")
    base_only = medtune_logits(work, base, None, "base")
    scale = rms(want)
    if label:
        engine = rms(llama_cpp_logits(L, base) - base_only) / scale
        print(f"{label}: {engine:.4g} x RMS")
    return want, base_only, scale


def merge(work, base, adapter, t):
    """`medtune merge --type t` of base + adapter; returns the merged file."""
    out = os.path.join(work, f"merged_{t}.gguf")
    run(["merge", base, adapter, out, "--type", t])
    return out


def case_random():
    L = llama_cpp_module()
    from merge_gguf_lib import random_base, trained_adapter
    work = work_dir("merge_llama_cpp_random")
    model, base = random_base(work)
    adapter = trained_adapter(work, model)
    want, base_only, scale = references(L, work, base, adapter)
    for t in ["f32", "f16", "q8_0", "q4_k"]:
        out = merge(work, base, adapter, t)
        got = llama_cpp_logits(L, out)
        compare(f"{t}: llama.cpp", got, want, base_only, TOL[t], scale, t in FINE)
        own = medtune_logits(work, out, None, f"medtune_{t}")
        same = rms(got - own)
        print(f"{t}: RMS |llama.cpp - medtune| on the merged file {same:.4g} "
              f"(tolerance {TOL_SAME[t] * scale:.4g})")
        if same > TOL_SAME[t] * scale:
            fail(f"{t}: llama.cpp and medtune disagree on the merged file by {same:.4g} RMS")
    print("PASS")


def case_smollm2():
    L = llama_cpp_module()
    base = smollm2()
    if not base:
        skip("SmolLM2-135M-Instruct.Q4_1.gguf is absent from .cache (tools/fetch_smollm2.sh)")
    work = work_dir("merge_llama_cpp_smollm2")
    adapter = random_adapter(work, base, "adapter", r=8, alpha=16, seed=3)
    want, base_only, scale = references(L, work, base, adapter,
                                        "smollm2: llama.cpp vs medtune on the unmerged Q4_1 base")
    for t, tol in TOL_SMOLLM2.items():
        out = merge(work, base, adapter, t)
        # A Q4_1 requantization of W + delta moves the logits about as much as this random
        # adapter does, so for `same` only loading and the tolerance are checked.
        compare(f"smollm2 {t}: llama.cpp", llama_cpp_logits(L, out), want, base_only, tol, scale,
                False, visible=t != "same")
    print("PASS")


# phi3/gpt2: medtune's f32 merge against its unmerged base + adapter (max |diff|, logits of
# max |logit| about 5: fp32 summation order of W + scale B A only).
TOL_ARCH_F32_MEDTUNE = 1e-4
# x the RMS of the reference logits, with at least 1.5x margin over what was measured on these
# models: phi3 6.8e-7, 6.6e-4, 0.0178, 0.175 (logits RMS 1.03); gpt2 1.9e-4, 5.1e-4, 0.0134,
# 0.131 (logits RMS 17.9). gpt2's f32 floor is ggml's GELU, which looks the result up in a table
# indexed by the fp16-rounded input (llama.cpp and medtune differ by 1.9e-4 x RMS on the
# unmerged base already).
TOL_ARCH = {"phi3": {"f32": 1e-5, "f16": 2e-3, "q8_0": 0.03, "q4_k": 0.27},
            "gpt2": {"f32": 4e-4, "f16": 1e-3, "q8_0": 0.025, "q4_k": 0.2}}


def case_arch(arch):
    L = llama_cpp_module()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "arch"))
    from arch_fresh import GPT2, PHI3, write_random_gguf
    from export_lib import helper
    work = work_dir(f"merge_llama_cpp_{arch}")
    base = write_random_gguf(PHI3 if arch == "phi3" else GPT2, os.path.join(work, "base.gguf"))
    adapter = random_adapter(work, base, "adapter", r=8, alpha=16, seed=7)
    want, base_only, scale = references(L, work, base, adapter,
                                        f"{arch}: llama.cpp vs medtune on the unmerged F32 base")
    for t in ["f32", "f16", "q8_0", "q4_k"]:
        out = merge(work, base, adapter, t)
        if t == "f32":
            helper(["compare", base, adapter, out, str(TOL_ARCH_F32_MEDTUNE)])
        compare(f"{arch} {t}: llama.cpp", llama_cpp_logits(L, out), want, base_only,
                TOL_ARCH[arch][t], scale, t in FINE)
    print("PASS")


def case_quantizer():
    cache = cache_dir()
    libs = glob.glob(os.path.join(cache, "build", "bin", "libggml-base.so"))
    if not libs:
        fail(f"no libggml-base.so in {cache}/build/bin")
    ggml = ctypes.CDLL(libs[0])
    ggml.ggml_quantize_chunk.restype = ctypes.c_size_t
    ggml.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                         ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                         ctypes.c_void_p]
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "formats"))
    from check_quant import gaussian_rows, medtune_quantize, rel_rms
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
    from gguf.quants import dequantize
    work = work_dir("merge_llama_cpp_quantizer")
    x = gaussian_rows(np.random.default_rng(5), 64, 1024)
    for qt in [T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_0, T.Q4_0]:
        block, size = GGML_QUANT_SIZES[qt]
        ref = np.zeros((x.shape[0], x.shape[1] // block * size), np.uint8)
        ggml.ggml_quantize_chunk(int(qt), x.ctypes.data, ref.ctypes.data, 0, x.shape[0],
                                 x.shape[1], None)
        e_ref = rel_rms(dequantize(ref, qt).reshape(x.shape), x)
        mine = medtune_quantize(work, qt, x)
        e_mt = rel_rms(dequantize(mine, qt).reshape(x.shape), x)
        same = np.mean(np.all(mine.reshape(-1, size) == ref.reshape(-1, size), axis=1))
        print(f"{qt.name}: relative RMS error medtune {e_mt:.5f}, llama.cpp {e_ref:.5f} "
              f"(ratio {e_mt / e_ref:.4f}; {100 * same:.1f}% of blocks byte-identical)")
        if e_mt > 1.05 * e_ref:
            fail(f"{qt.name}: medtune's quantizer error {e_mt:.5f} is above 1.05 x llama.cpp's "
                 f"{e_ref:.5f}")
    print("PASS")


CASES = {"random": case_random, "smollm2": case_smollm2, "quantizer": case_quantizer,
         "phi3": lambda: case_arch("phi3"), "gpt2": lambda: case_arch("gpt2")}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        fail(f"usage: check_merge_llama_cpp.py {'|'.join(CASES)}")
    CASES[sys.argv[1]]()
