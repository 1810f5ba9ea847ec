"""Runs the C tokenizer checks (tests/test_tokenizer.c: SHA-256 vectors, fingerprints, load
errors, concurrent encoding) on tokenizers trained on the sample data with HF `tokenizers`: a
byte-level BPE, the same with two extra added tokens (its fingerprint must differ), a
SentencePiece-style BPE; then on gpt2 / phi-2 / mistral of $MEDTUNE_SHARED when present."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_ref  # noqa: E402
from tokenizers import AddedToken, Tokenizer  # noqa: E402


def main():
    shared, _ = tokenizer_ref.env_paths()
    exe = os.path.join(os.environ.get("MEDTUNE_TEST_BIN", "."), "test_tokenizer")
    with tempfile.TemporaryDirectory() as tmp:
        toks = tokenizer_ref.fresh_tokenizer_set(tmp)
        byte_level, spm = toks["trained-gpt2"][0], toks["trained-spm"][0]
        added = os.path.join(tmp, "trained-gpt2-added")
        os.makedirs(added)
        t = Tokenizer.from_file(os.path.join(byte_level, "tokenizer.json"))
        t.add_tokens([AddedToken("  ", normalized=True), AddedToken("<|note|>", special=False)])
        t.save(os.path.join(added, "tokenizer.json"))
        rc = subprocess.call([exe, byte_level, added, spm])
        if rc != 0 or shared is None:
            return rc
        return subprocess.call([exe])


if __name__ == "__main__":
    sys.exit(main())
