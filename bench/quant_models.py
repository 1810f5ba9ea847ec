#!/usr/bin/env python3
"""Random-weight llama GGUF files of real model shapes for the quantized-base benchmarks
(bench/quant_train.sh, bench/quant_generate.sh), written by tests/weight/weight_lib.py one
tensor at a time, with a SentencePiece-style vocabulary so that `medtune generate` and
llama.cpp load them. A file that already exists is kept.

usage: quant_models.py SHAPE TYPE OUT.gguf
  SHAPE: tinyllama (TinyLlama-1.1B: C 2048, F 5632, L 22, H 32, KV 4, V 32000, untied)
         llama2-7b (Llama-2-7B: C 4096, F 11008, L 32, H 32, KV 32, V 32000, untied)
  TYPE:  f32, f16, bf16, q8_0, q4_0, q4_1, q4_k, q5_k, q6_k, q4_k_m (llama.cpp's mix: Q6_K
         for v, down and the head)"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "weight"))
import weight_lib  # noqa: E402
from gguf import GGMLQuantizationType as Q  # noqa: E402

SHAPES = {
    "tinyllama": {"hidden_size": 2048, "intermediate_size": 5632, "n_layers": 22, "n_heads": 32,
                  "n_kv_heads": 4, "vocab_size": 32000, "context": 2048, "tied": False, "seed": 1,
                  "vocab": True},
    "llama2-7b": {"hidden_size": 4096, "intermediate_size": 11008, "n_layers": 32, "n_heads": 32,
                  "n_kv_heads": 32, "vocab_size": 32000, "context": 4096, "tied": False, "seed": 1,
                  "vocab": True},
}


def types_of(name):
    if name == "q4_k_m":
        return {"*": Q.Q4_K, "v": Q.Q6_K, "down": Q.Q6_K, "output": Q.Q6_K}
    return {"*": Q[name.upper()]}


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in SHAPES:
        sys.exit(__doc__)
    shape, qtype, out = sys.argv[1:]
    if os.path.exists(out):
        return
    tmp = out + ".tmp"
    weight_lib.write_llama(tmp, SHAPES[shape], types_of(qtype))
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
