"""medtune eval on a model directory whose tokenizer.json has no model.type (Hugging Face
infers BPE there, as in the real GPT-2 file): it must load with the same reader as `tokenize`
and `prep`, give the ids of HF `tokenizers`, and evaluate. Two cases: a byte-level BPE
tokenizer.json written here from a small vocabulary (no ../shared needed), and the real GPT-2
tokenizer.json from ../shared/tokenizers/gpt2 (skipped without ../shared)."""
import json
import os

from tokenizers import Tokenizer

from eval_lib import MEDICAL_TEXT, fail, prep_text, run, tiny_model, work_dir, write_json
from testlib import env


def byte_alphabet():
    """GPT-2's bytes_to_unicode: byte -> printable character (a fact of the format)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    extra = 0
    out = {}
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def small_tokenizer_json(path):
    """Byte-level BPE over the 256 byte tokens plus a few merges; model has no "type"."""
    alpha = byte_alphabet()
    vocab = {alpha[b]: b for b in range(256)}
    merges = []
    for word in ["Ġt", "he", "Ġthe", "in", "er", "Ġa", "on", "at", "Ġin", "is"]:
        # Each merge joins the longest known prefix with the rest (both already in vocab).
        for cut in range(len(word) - 1, 0, -1):
            left, right = word[:cut], word[cut:]
            if left in vocab and right in vocab:
                merges.append(f"{left} {right}")
                vocab[word] = len(vocab)
                break
    eot = len(vocab)
    write_json(path, {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": eot, "content": "<|endoftext|>", "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True},
        "model": {"dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "vocab": vocab, "merges": merges},
    })
    return eot + 1


def check(label, tok_json, vocab_size, work):
    if "type" in json.load(open(tok_json))["model"]:
        fail(f"{label}: the test tokenizer.json has model.type")
    model = tiny_model(os.path.join(work, "model"), vocab_size, tok_json)
    hf = Tokenizer.from_file(tok_json)
    texts = MEDICAL_TEXT + ["  two  spaces,\ttab and ünïcödé — 症状 <|endoftext|>"]
    p = run(["tokenize", model, "--json", "--json-input"],
            input="".join(json.dumps(t) + "\n" for t in texts))
    for t, line in zip(texts, p.stdout.splitlines()):
        got, want = json.loads(line)["ids"], hf.encode(t).ids
        if got != want:
            fail(f"{label}: {t!r}: medtune {got}, HF tokenizers {want}")
    info = run(["info", model, "--json"]).stdout
    if json.loads(info)["tokenizer"] != "BPE byte-level":
        fail(f"{label}: info reports tokenizer {json.loads(info)['tokenizer']!r}")
    shards = prep_text(os.path.join(work, "shards"), model)
    r = json.loads(run(["eval", model, "--shards", shards, "--seq-len", "32", "--json"]).stdout)
    if not r["tokens"] > 0 or not r["loss"] > 0:
        fail(f"{label}: eval gave {r}")
    print(f"{label}: ids equal HF tokenizers on {len(texts)} texts; eval loss {r['loss']:.4f} "
          f"over {r['tokens']} targets")


def main():
    work = work_dir("tokenizer_json")
    small = os.path.join(work, "small")
    os.makedirs(small)
    tok = os.path.join(small, "tokenizer.json")
    check("written tokenizer.json without model.type", tok, small_tokenizer_json(tok), small)
    shared = env("MEDTUNE_SHARED", os.path.join(os.path.dirname(__file__), "../../../shared"))
    gpt2 = os.path.join(shared, "tokenizers", "gpt2", "tokenizer.json")
    if not os.path.exists(gpt2):
        print(f"SKIP: {gpt2} is absent: the GPT-2 case was not run")
        return
    os.makedirs(os.path.join(work, "gpt2"))
    check("GPT-2 tokenizer.json", gpt2, Tokenizer.from_file(gpt2).get_vocab_size(),
          os.path.join(work, "gpt2"))
    print("OK")


if __name__ == "__main__":
    main()
