"""ctest driver: a random-weight llama GGUF in one stored type and its F32 twin (every tensor
dequantized by gguf-py's gguf.quants.dequantize), then test_weight_exact on the pair: losses,
LoRA gradients and greedy tokens of the model kept as stored equal those of the fp32 path.
Usage: check_exact.py CASE (q8_0, q4_0, q4_1, q5_k, q4_k, q6_k, q2_k, q3_k, q4_k_m, bf16,
f16; q4_k_m_no_avx2: q4_k_m with MEDTUNE_NO_AVX2=1, the portable kernels).

The base_dtype cases (hf_bf16, hf_q8_0) load a Hugging Face F32 base converted at load and
compare it with an F32 twin holding gguf-py's dequantize(quantize(W)) of every matrix; the log
must say that the base was converted. gguf_base_dtype: a GGUF with base_dtype q8_0 is refused
with one line naming the file and the key."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import weight_lib  # noqa: E402
from gguf import GGMLQuantizationType as Q  # noqa: E402
from testlib import env, fail, work_dir  # noqa: E402

# case -> (types by role, tied embeddings). q4_k_m mixes types as llama.cpp's Q4_K_M does
# (Q6_K for v, down and the head), untied so the head is its own matrix.
CASES = {
    "q8_0": ({"*": Q.Q8_0}, True),
    "q4_0": ({"*": Q.Q4_0}, True),
    "q4_1": ({"*": Q.Q4_1}, False),
    "q5_k": ({"*": Q.Q5_K}, True),
    "q4_k": ({"*": Q.Q4_K}, True),
    "q6_k": ({"*": Q.Q6_K}, False),
    "q2_k": ({"*": Q.Q2_K}, True),
    "q3_k": ({"*": Q.Q3_K}, False),
    "q4_k_m": ({"*": Q.Q4_K, "v": Q.Q6_K, "down": Q.Q6_K, "output": Q.Q6_K}, False),
    "bf16": ({"*": Q.BF16}, False),
    "f16": ({"*": Q.F16}, True),
}


def run_exact(args, extra_env=None):
    exe = os.path.join(env("MEDTUNE_TEST_BIN", "."), "test_weight_exact")
    p = subprocess.run([exe] + args, capture_output=True, text=True,
                       env=dict(os.environ, **(extra_env or {})))
    print(p.stdout, end="")
    return p


def hf_case(case):
    qt = {"hf_bf16": Q.BF16, "hf_q8_0": Q.Q8_0}[case]
    d = work_dir("weight", f"exact_{case}")
    spec = dict(weight_lib.SPEC, tied=False)
    base, twin = os.path.join(d, "base"), os.path.join(d, "twin")
    weight_lib.write_hf(base, spec)
    weight_lib.write_hf(twin, spec, round_trip=qt)
    p = run_exact([base, twin, case[3:]])
    if p.returncode != 0:
        fail(f"test_weight_exact exited {p.returncode}\n{p.stderr}")
    if f"base_dtype {case[3:]}" not in p.stderr:
        fail(f"the log does not say the base was converted:\n{p.stderr}")


def gguf_refuses():
    d = work_dir("weight", "gguf_base_dtype")
    path = os.path.join(d, "q8.gguf")
    weight_lib.write_llama(path, weight_lib.SPEC, {"*": Q.Q8_0})
    p = run_exact([path, path, "q8_0"])
    want = f"{path}: base_dtype: q8_0 applies to Hugging Face bases"
    if p.returncode == 0 or want not in p.stdout + p.stderr:
        fail(f"expected a refusal naming {want!r}, got exit {p.returncode}:\n{p.stdout}{p.stderr}")


def main():
    case = sys.argv[1]
    if case.startswith("hf_"):
        return hf_case(case)
    if case == "gguf_base_dtype":
        return gguf_refuses()
    no_avx2 = case.endswith("_no_avx2")
    types, tied = CASES[case[:-len("_no_avx2")] if no_avx2 else case]
    d = work_dir("weight", f"exact_{case}")
    spec = dict(weight_lib.SPEC, tied=tied)
    stored, twin = os.path.join(d, f"{case}.gguf"), os.path.join(d, "f32.gguf")
    weight_lib.write_llama(stored, spec, types)
    weight_lib.write_llama(twin, spec, types, f32_twin=True)
    p = run_exact([stored, twin], {"MEDTUNE_NO_AVX2": "1"} if no_avx2 else None)
    if p.returncode != 0:
        fail(f"test_weight_exact exited {p.returncode}\n{p.stderr}")


if __name__ == "__main__":
    main()
