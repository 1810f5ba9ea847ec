"""ctest driver: a random-weight llama GGUF in one stored type and its F32 twin (every tensor
dequantized by gguf-py's gguf.quants.dequantize), then test_weight_exact on the pair: losses,
LoRA gradients and greedy tokens of the model kept as stored equal those of the fp32 path.
Usage: check_exact.py CASE (q8_0, q4_0, q4_1, q5_k, q4_k, q6_k, q4_k_m, bf16, f16)."""
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
    "q4_k_m": ({"*": Q.Q4_K, "v": Q.Q6_K, "down": Q.Q6_K, "output": Q.Q6_K}, False),
    "bf16": ({"*": Q.BF16}, False),
    "f16": ({"*": Q.F16}, True),
}


def main():
    case = sys.argv[1]
    types, tied = CASES[case]
    d = work_dir("weight", f"exact_{case}")
    spec = dict(weight_lib.SPEC, tied=tied)
    stored, twin = os.path.join(d, f"{case}.gguf"), os.path.join(d, "f32.gguf")
    weight_lib.write_llama(stored, spec, types)
    weight_lib.write_llama(twin, spec, types, f32_twin=True)
    exe = os.path.join(env("MEDTUNE_TEST_BIN", "."), "test_weight_exact")
    p = subprocess.run([exe, stored, twin], capture_output=True, text=True)
    print(p.stdout, end="")
    if p.returncode != 0:
        fail(f"test_weight_exact exited {p.returncode}\n{p.stderr}")


if __name__ == "__main__":
    main()
