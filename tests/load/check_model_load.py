"""ctest driver: builds one model-loading case with tests/load/load_ref.py in a temporary
directory and runs test_model_load MODEL REF_DIR on it. Usage: check_model_load.py CASE.

Every case runs on random-weight stand-ins a fresh clone can make (testlib.random_hf_model:
the shapes of tinystories-656k, and of stories260K with head_dim != hidden/heads, each with a
SentencePiece-style tokenizer trained on the sample data), and again on the real
tinystories-656k / stories260K of $MEDTUNE_SHARED when present."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import load_ref  # noqa: E402
from testlib import random_hf_model  # noqa: E402

Q = load_ref.Q
SHARED = os.environ.get("MEDTUNE_SHARED", "")
CACHE = os.environ.get("MEDTUNE_CACHE", "")
SMOL = os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")
# name -> (real model in $MEDTUNE_SHARED, random stand-in spec for testlib.random_hf_model)
SOURCES = {
    "tinystories": (os.path.join(SHARED, "models", "tinystories-656k"), {}),
    "stories260K": (os.path.join(SHARED, "models", "stories260K"),
                    {"hidden_size": 64, "intermediate_size": 172, "n_layers": 3, "n_heads": 6,
                     "n_kv_heads": 2, "head_dim": 16, "rms_norm_eps": 1e-5, "seed": 6}),
}


def need(path):
    if not os.path.exists(path):
        print(f"SKIP: {path} is absent")
        sys.exit(77)


def models_of(source, tmp):
    """[(label, HF directory)]: the random stand-in, then the real model when present."""
    real, spec = SOURCES[source]
    out = [(f"random {source}-shaped", random_hf_model(os.path.join(tmp, "random-" + source), **spec))]
    if os.path.isdir(real):
        out.append((real, real))
    else:
        print(f"note: {real} is absent: the random stand-in only")
    return out


def hf_variant(**kw):
    def build(src, tmp):
        model = os.path.join(tmp, "model")
        load_ref.copy_hf_dir(src, model, **kw)
        load_ref.hf_reference(model, tmp)
        return model
    return "tinystories", build


def shared_hf(source):
    def build(src, tmp):
        load_ref.hf_reference(src, tmp, {"tokenizer_kind": "BPE sentencepiece"})
        return src
    return source, build


def gguf_variant(source, qtype, arch="llama", add_bias=False, against_hf=False):
    def build(src, tmp):
        path = os.path.join(tmp, "model.gguf")
        load_ref.write_gguf_from_hf(src, path, qtype, arch, add_bias)
        if against_hf:
            # F32 round trip: after un-permutation the loaded Q/K must equal the HF tensors.
            load_ref.hf_reference(src, tmp, {"source_format": "gguf", "tokenizer_kind": "llama (gguf)"})
        else:
            load_ref.gguf_reference(path, tmp)
        return path
    return source, build


def smollm2(_, tmp):
    need(SMOL)
    load_ref.gguf_reference(SMOL, tmp)
    return SMOL


TINY, S260 = "tinystories", "stories260K"
CASES = {
    "hf_stories260K": shared_hf(S260),
    "hf_tinystories": shared_hf(TINY),
    "hf_f16": hf_variant(dtype=load_ref.torch.float16),
    "hf_bf16": hf_variant(dtype=load_ref.torch.bfloat16),
    "hf_sharded": hf_variant(shards=3),
    "hf_untied": hf_variant(untie=True),
    "hf_qwen2": hf_variant(config_update={"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
                                          "use_sliding_window": False}, add_bias=True),
    "hf_mistral": hf_variant(config_update={"model_type": "mistral", "architectures": ["MistralForCausalLM"],
                                            "sliding_window": None}),
    "hf_llama3_rope": hf_variant(config_update={
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 128},
        "eos_token_id": [2, 0], "bos_token_id": None, "head_dim": None}),
    "hf_rope_parameters": hf_variant(config_update={
        "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500000.0}}),
    "gguf_f32": gguf_variant(TINY, Q.F32, against_hf=True),
    "gguf_f16": gguf_variant(TINY, Q.F16),
    "gguf_bf16": gguf_variant(TINY, Q.BF16),
    "gguf_q8_0": gguf_variant(TINY, Q.Q8_0),
    "gguf_q4_0": gguf_variant(TINY, Q.Q4_0),
    "gguf_q4_1": gguf_variant(TINY, Q.Q4_1),
    "gguf_stories260K_f32": gguf_variant(S260, Q.F32, against_hf=True),
    "gguf_stories260K_q8_0": gguf_variant(S260, Q.Q8_0),
    "gguf_qwen2_q8_0": gguf_variant(TINY, Q.Q8_0, arch="qwen2", add_bias=True),
    "smollm2": (None, smollm2),
}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        sys.exit(f"usage: check_model_load.py {{{','.join(CASES)}}}")
    exe = os.path.join(os.environ.get("MEDTUNE_TEST_BIN", "."), "test_model_load")
    source, build = CASES[sys.argv[1]]
    root = tempfile.mkdtemp(prefix="medtune_load_")
    try:
        models = models_of(source, root) if source else [("SmolLM2", None)]
        for i, (label, src) in enumerate(models):
            tmp = os.path.join(root, f"case{i}")
            os.makedirs(tmp)
            print(f"{sys.argv[1]} on {label}:", flush=True)
            rc = subprocess.run([exe, build(src, tmp), tmp]).returncode
            if rc != 0:
                sys.exit(rc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
