"""tokenizer_to_json against HF `tokenizers`: runs test_tok_save_json (which writes tokenizers
trained on the sample data in five families, a SentencePiece GGUF of trained pieces, the SmolLM2
GGUF and, with ../shared, every staged tokenizer.json and a SentencePiece GGUF written from
Llama 2's tokenizer.model back as tokenizer.json and checks medtune reads them to the same
fingerprint),
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
from testlib import env, fail, medtune_bin, smollm2, work_dir  # noqa: E402
sys.path.insert(0, HERE)
import tokenizer_ref  # noqa: E402
from check_gguf import converter_reference, trained_spm_pieces, write_llama_gguf  # noqa: E402
from fresh_lib import shared_or_none  # noqa: E402

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
    shared = shared_or_none()
    test_bin = env("MEDTUNE_TEST_BIN", ".")
    inputs = work_dir("tokenizer", "save_json_inputs")
    # source path -> the ids the written tokenizer.json must give (one list per text).
    sources = {}
    # Always: tokenizers HF trains on the sample data (five families), and a SentencePiece
    # GGUF written from a trained piece list, whose reference is the converter's HF tokenizer.
    for name, (path, ref_json, _, _) in tokenizer_ref.fresh_tokenizer_set(inputs).items():
        ref = Tokenizer.from_file(ref_json)
        sources[path] = [ref.encode(t).ids for t in TEXTS]
    pieces = trained_spm_pieces(inputs)
    spm = converter_reference(pieces)
    sources[write_llama_gguf(pieces, os.path.join(inputs, "trained-spm.gguf"))] = \
        [spm.encode(t).ids for t in TEXTS]
    if shared:
        for src in ["tokenizers/gpt2", "tokenizers/phi-2", "tokenizers/phi-3-mini",
                    "tokenizers/mistral-7b-v0.1", "models/tinystories-656k", "models/stories260K"]:
            ref = Tokenizer.from_file(os.path.join(shared, src, "tokenizer.json"))
            sources[os.path.join(shared, src)] = [ref.encode(t).ids for t in TEXTS]
        # The staged file predates transformers marking <unk>, <s>, </s> normalized=false, as a
        # GGUF's control tokens are read (tests/tokenizer/check_gguf.py does the same).
        llama2 = os.path.join(shared, "tokenizers", "llama2", "tokenizer.model")
        spm_ref = os.path.join(tokenizer_ref.repair_llama2(shared, os.path.join(inputs, "llama2")),
                               "tokenizer.json")
        j = json.load(open(spm_ref, encoding="utf-8"))
        for a in j["added_tokens"]:
            a["normalized"] = False
        json.dump(j, open(spm_ref, "w", encoding="utf-8"), ensure_ascii=False)
        spm = Tokenizer.from_file(spm_ref)
        gguf = write_llama_gguf(tokenizer_ref.spm_pieces(llama2),
                                os.path.join(inputs, "llama2-vocab.gguf"))
        sources[gguf] = [spm.encode(t).ids for t in TEXTS]
    else:
        print("../shared is absent: the staged tokenizers and Llama 2's vocabulary were not run")
    gguf = smollm2()
    if gguf:
        sources[gguf] = medtune_ids(gguf)
    else:
        print("the SmolLM2 GGUF is absent (tools/fetch_smollm2.sh fetches it): not run")
    p = subprocess.run([os.path.join(test_bin, "test_tok_save_json")] + list(sources),
                       capture_output=True, text=True)
    print(p.stdout, end="")
    if p.returncode:
        fail(f"test_tok_save_json exited {p.returncode}: {p.stderr}")
    out = os.path.join(test_bin, "tok_save_json")
    cases = []
    for src, want in sources.items():
        written = os.path.join(out, os.path.basename(src) + ".json")
        cases.append((written, want))
        if not src.endswith(".gguf"):
            ref = Tokenizer.from_file(src if src.endswith(".json") else os.path.join(src, "tokenizer.json"))
            w = Tokenizer.from_file(written)
            for ids in want:
                if w.decode(ids, skip_special_tokens=False) != ref.decode(ids, skip_special_tokens=False):
                    fail(f"{written}: decoding {ids} differs from {src}")
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
