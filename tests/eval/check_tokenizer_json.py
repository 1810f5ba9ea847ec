"""medtune eval on a model directory whose tokenizer.json has no model.type (Hugging Face
infers BPE there, as in the real GPT-2 file): it must load with the same reader as `tokenize`
and `prep`, give the ids of HF `tokenizers`, and evaluate. Two cases: a byte-level BPE
tokenizer.json written here from a small vocabulary (no ../shared needed), and the real GPT-2
tokenizer.json from ../shared/tokenizers/gpt2 (skipped without ../shared)."""
import json
import os

from tokenizers import Tokenizer

from eval_lib import MEDICAL_TEXT, fail, prep_text, run, small_tokenizer_json, tiny_model, work_dir
from testlib import env


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
        print(f"{gpt2} is absent: the GPT-2 case was not run")
        return
    os.makedirs(os.path.join(work, "gpt2"))
    check("GPT-2 tokenizer.json", gpt2, Tokenizer.from_file(gpt2).get_vocab_size(),
          os.path.join(work, "gpt2"))
    print("OK")


if __name__ == "__main__":
    main()
