"""tokenizer_to_json against HF `tokenizers`: runs test_tok_save_json (which writes every staged
tokenizer.json, the SmolLM2 GGUF and a SentencePiece GGUF written here from Llama 2's
tokenizer.model back as tokenizer.json and checks medtune reads them to the same fingerprint),
then loads each written file with HF `tokenizers` (0.23 in .venv, and 0.19, transformers 4.40's,
in .cache/venv-peft when present): the ids of varied texts equal those of the original HF file
(for the SentencePiece GGUF: Llama 2's repaired tokenizer.json, as tokenizer_gguf_llama_spm
uses), or of medtune on the SmolLM2 GGUF, and decoding gives the same text."""
import json
import os
import subprocess
import sys

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import env, fail, medtune_bin, shared_dir, work_dir  # noqa: E402
sys.path.insert(0, HERE)
import tokenizer_ref  # noqa: E402
from check_gguf import write_llama_gguf  # noqa: E402

TEXTS = [
    "Metformin lowers HbA1c by ~1.5% (95% CI 1.2-1.8) in type 2 diabetes.",
    "  runs\tof   whitespace \n\n and caf\u00e9, \u75c7\u72b6 \U0001f9e0 \u00a0\u3000",
    "</s><s>special tokens <|endoftext|><|im_start|>user\n12345<|im_end|>",
    " leading space", "", "\n", "x" * 300,
]

# Compares one written file with its reference ids; run with each tokenizers version.
COMPARE = r"""
import json, sys
from tokenizers import Tokenizer
cases, texts = json.load(sys.stdin)
for written, want in cases:
    t = Tokenizer.from_file(written)
    for text, ids in zip(texts, want):
        got = t.encode(text).ids
        if got != ids:
            sys.exit(f"{written}: {text!r}: {got}, expected {ids}")
print(len(cases))
"""


def medtune_ids(model):
    p = subprocess.run([medtune_bin(), "tokenize", model, "--json-input"], capture_output=True,
                       text=True, input="".join(json.dumps(t) + "\n" for t in TEXTS))
    if p.returncode:
        fail(f"medtune tokenize {model}: {p.stderr}")
    return [json.loads(line) for line in p.stdout.splitlines()]


def main():
    shared = shared_dir()
    test_bin = env("MEDTUNE_TEST_BIN", ".")
    inputs = work_dir("tokenizer", "save_json_inputs")
    spm_gguf = write_llama_gguf(shared, os.path.join(inputs, "llama2-vocab.gguf"))
    # The staged file predates transformers marking <unk>, <s>, </s> normalized=false, as a
    # GGUF's control tokens are read (tests/tokenizer/check_gguf.py does the same).
    spm_ref = os.path.join(tokenizer_ref.repair_llama2(shared, os.path.join(inputs, "llama2")),
                           "tokenizer.json")
    j = json.load(open(spm_ref, encoding="utf-8"))
    for a in j["added_tokens"]:
        a["normalized"] = False
    json.dump(j, open(spm_ref, "w", encoding="utf-8"), ensure_ascii=False)
    p = subprocess.run([os.path.join(test_bin, "test_tok_save_json"), spm_gguf],
                       capture_output=True, text=True)
    print(p.stdout, end="")
    if p.returncode:
        fail(f"test_tok_save_json exited {p.returncode}: {p.stderr}")
    out = os.path.join(test_bin, "tok_save_json")
    cases = []
    for src in ["tokenizers/gpt2", "tokenizers/phi-2", "tokenizers/phi-3-mini",
                "tokenizers/mistral-7b-v0.1", "models/tinystories-656k", "models/stories260K"]:
        ref = Tokenizer.from_file(os.path.join(shared, src, "tokenizer.json"))
        written = os.path.join(out, os.path.basename(src) + ".json")
        cases.append((written, [ref.encode(t).ids for t in TEXTS]))
        w = Tokenizer.from_file(written)
        for t in TEXTS:
            ids = ref.encode(t).ids
            if w.decode(ids, skip_special_tokens=False) != ref.decode(ids, skip_special_tokens=False):
                fail(f"{written}: decoding {ids} differs from {src}")
    spm = Tokenizer.from_file(spm_ref)
    cases.append((os.path.join(out, "llama2-vocab.gguf.json"), [spm.encode(t).ids for t in TEXTS]))
    gguf = os.path.join(env("MEDTUNE_CACHE", os.path.join(HERE, "../../.cache")),
                        "SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(gguf):
        cases.append((os.path.join(out, os.path.basename(gguf) + ".json"), medtune_ids(gguf)))
    else:
        print(f"{gguf} is absent: the GGUF case was not run")
    pythons = [sys.executable]
    peft_py = os.path.join(env("MEDTUNE_CACHE", os.path.join(HERE, "../../.cache")),
                           "venv-peft", "bin", "python")
    if os.path.exists(peft_py):
        pythons.append(peft_py)
    else:
        print(f"{peft_py} is absent: tokenizers 0.19 was not checked")
    for py in pythons:
        r = subprocess.run([py, "-c", "import tokenizers; print(tokenizers.__version__)"],
                           capture_output=True, text=True)
        c = subprocess.run([py, "-c", COMPARE], input=json.dumps([cases, TEXTS]),
                           capture_output=True, text=True)
        if c.returncode:
            fail(f"tokenizers {r.stdout.strip()}: {c.stderr.strip()}")
        print(f"tokenizers {r.stdout.strip()}: {c.stdout.strip()} written files give the "
              f"reference ids on {len(TEXTS)} texts")
    print("OK")


if __name__ == "__main__":
    main()
