"""llama.cpp's reference vectors (HF transformers encodings of the real models, no special
tokens) against both the HF reference tokenizer we use (which proves the staged/rebuilt
tokenizer.json files are the real ones) and medtune tokenize.
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_ref  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def main():
    shared, binary = tokenizer_ref.env_paths()
    if shared is None:
        tokenizer_ref.skip("the llama.cpp reference vectors are those of the real tokenizers in "
                           "$MEDTUNE_SHARED, which is absent")
    if not os.path.isdir(os.path.join(shared, "tokenizers", "_reference_vectors_llamacpp")):
        tokenizer_ref.skip("no llama.cpp reference vectors in %s/tokenizers" % shared)
    failed = checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (model, json_path, vectors, _) in sorted(tokenizer_ref.tokenizer_set(shared, tmp).items()):
            if not vectors:
                continue
            cases = tokenizer_ref.reference_vectors(shared, vectors)
            texts = [t for t, _ in cases]
            hf = Tokenizer.from_file(json_path)
            ref = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
            got = tokenizer_ref.medtune_encode(binary, model, texts, add_special=False)
            bad_hf = [i for i, (t, ids) in enumerate(cases) if ref[i] != ids]
            bad_mt = [i for i, (t, ids) in enumerate(cases) if got[i] != ids]
            # Reference vectors come from 2024 transformers; a disagreement of the reference
            # tokenizer itself is reported, but medtune is held to today's HF `tokenizers`.
            for i in bad_hf:
                print("note: %s: HF tokenizers today differs from llama.cpp's vector for %r: %s vs %s"
                      % (name, texts[i][:60], ref[i][:20], cases[i][1][:20]))
            for i in bad_mt:
                if got[i] != ref[i]:
                    tokenizer_ref.report_mismatch("%s vs llama.cpp vectors %s" % (name, vectors), "case %d" % i,
                                           texts[i], got[i], cases[i][1])
                    failed += 1
                    break
            checked += 1
            print("%s: %d/%d llama.cpp %s vectors equal (HF tokenizers: %d/%d)"
                  % (name, len(cases) - len(bad_mt), len(cases), vectors, len(cases) - len(bad_hf), len(cases)))
    if not checked:
        tokenizer_ref.skip("no tokenizer with reference vectors available")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
