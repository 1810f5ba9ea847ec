"""GGUF tokenizers: medtune reading tokenizer.ggml.* metadata == HF `tokenizers`.

smollm2: the real SmolLM2-135M-Instruct GGUF ($MEDTUNE_CACHE). The reference is a HF byte-level
  BPE built here from the GGUF's own tokens and merges (read with the gguf pip package) with
  SmolLM2's pre-tokenizer (Digits(individual_digits) + ByteLevel, llama.cpp's "smollm").
llama-spm: GGUFs written here with the gguf package (pieces, scores, types, as llama.cpp's
  converter stores them, no merges): from a SentencePiece-style BPE trained on the sample data,
  against the HF tokenizer transformers' LlamaConverter algorithm builds from those pieces; and,
  when $MEDTUNE_SHARED is present, from Llama 2's tokenizer.model against Llama 2's
  tokenizer.json. This checks medtune's merges-from-scores reconstruction.
Both are compared on the checkout's sample files (testlib.sample_records, with
tests/data/adversarial.txt) and, when $MEDTUNE_SHARED is present, a sample of its data files.
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_ref  # noqa: E402
from check_parity_data import data_records  # noqa: E402
from testlib import sample_records  # noqa: E402
from testlib import train_tokenizer  # noqa: E402
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors  # noqa: E402


def gguf_strings(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def gguf_scalar(reader, key, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.parts[f.data[0]].tolist()[0]


def smollm2_reference(path):
    from gguf import GGUFReader
    r = GGUFReader(path)
    if bytes(r.fields["tokenizer.ggml.pre"].parts[r.fields["tokenizer.ggml.pre"].data[0]]).decode() != "smollm":
        raise SystemExit("FAIL: %s: tokenizer.ggml.pre is not 'smollm'" % path)
    tokens = gguf_strings(r, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ")) for m in gguf_strings(r, "tokenizer.ggml.merges")]
    types = [r.fields["tokenizer.ggml.token_type"].parts[i].tolist()[0] for i in r.fields["tokenizer.ggml.token_type"].data]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
    if gguf_scalar(r, "tokenizer.ggml.add_bos_token", False):
        raise SystemExit("FAIL: SmolLM2 GGUF unexpectedly asks for BOS")
    return tok


def trained_spm_pieces(tmp):
    """(piece, score, type) of a SentencePiece-style BPE trained on the sample data, laid out as
    a tokenizer.model is: a merged piece scores minus the rank of the merge that makes it (the
    BPE order), other pieces lower still; types 2 unknown, 3 control, 6 byte, 1 normal."""
    d = train_tokenizer("spm", os.path.join(tmp, "trained-spm"))
    j = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
    vocab = j["model"]["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in j["model"]["merges"]]
    rank = {}
    for r, (a, b) in enumerate(merges):
        rank.setdefault(a + b, r)
    pieces = []
    for piece, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        kind = 2 if piece == "<unk>" else 3 if piece in ("<s>", "</s>") else \
            6 if piece.startswith("<0x") and len(piece) == 6 else 1
        score = 0.0 if kind != 1 else -float(rank[piece]) if piece in rank else -float(len(merges) + i)
        pieces.append((piece, score, kind))
    return pieces


def converter_reference(pieces):
    """The HF tokenizer transformers' LlamaConverter makes from (piece, score, type): merges are
    every split of a piece into two pieces of the vocabulary, sorted by the piece's score
    (highest first; splits of one piece by the ids of their halves), byte fallback, the
    Prepend/Replace normalizer and Llama's decoder; control and unknown pieces special."""
    vocab = {p: i for i, (p, _, _) in enumerate(pieces)}
    merges = []
    for piece, score, _ in pieces:
        local = [(piece[:k], piece[k:], score) for k in range(1, len(piece))
                 if piece[:k] in vocab and piece[k:] in vocab]
        merges += sorted(local, key=lambda m: (vocab[m[0]], vocab[m[1]]))
    merges = [(a, b) for a, b, _ in sorted(merges, key=lambda m: m[2], reverse=True)]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(p, special=True, normalized=False) for p, _, t in pieces if t in (2, 3)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return tok


def write_llama_gguf(pieces, out):
    import gguf
    w = gguf.GGUFWriter(out, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list([p for p, _, _ in pieces])
    w.add_token_scores([s for _, s, _ in pieces])
    w.add_token_types([t for _, _, t in pieces])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def compare(name, binary, model, hf, records):
    texts = [t for _, _, t in records]
    for sp in (True, False):
        got = tokenizer_ref.medtune_encode(binary, model, texts, add_special=sp)
        want = [e.ids for e in hf.encode_batch(texts, add_special_tokens=sp)]
        for i in range(len(texts)):
            if got[i] != want[i]:
                f, ln, text = records[i]
                tokenizer_ref.report_mismatch("%s (add_special=%s)" % (name, sp), "%s line %s" % (f, ln), text, got[i], want[i])
                return False
    dec = tokenizer_ref.medtune_decode(binary, model, got, False)
    ref = hf.decode_batch(got, skip_special_tokens=False)
    if dec != ref:
        i = next(i for i in range(len(dec)) if dec[i] != ref[i])
        print("FAIL: %s: decode differs on %r\n  medtune: %r\n  HF:      %r" % (name, texts[i][:100], dec[i][:200], ref[i][:200]))
        return False
    print("%s: %d texts identical to HF with and without specials, decode identical" % (name, len(texts)))
    return True


def main():
    shared, binary = tokenizer_ref.env_paths()
    which = sys.argv[1]
    os.environ.setdefault("MEDTUNE_TOK_CAP", str(16 * 1024))
    lines, docs = sample_records()
    records = lines + docs
    if shared:
        _, lines, docs = data_records(shared)
        records += lines + docs
    with tempfile.TemporaryDirectory() as tmp:
        if which == "smollm2":
            path = os.path.join(os.environ.get("MEDTUNE_CACHE", ""), "SmolLM2-135M-Instruct.Q4_1.gguf")
            if not os.path.exists(path):
                tokenizer_ref.skip("%s is absent (tools/fetch_smollm2.sh downloads it)" % path)
            ok = compare("smollm2 gguf", binary, path, smollm2_reference(path), records)
        else:
            # A GGUF written from a SentencePiece-style BPE trained here, against the HF
            # tokenizer transformers' converter builds from the same pieces and scores.
            pieces = trained_spm_pieces(tmp)
            path = write_llama_gguf(pieces, os.path.join(tmp, "trained-spm.gguf"))
            ok = compare("llama-spm gguf (trained-spm)", binary, path, converter_reference(pieces), records)
            llama2 = os.path.join(shared or "", "tokenizers", "llama2", "tokenizer.model")
            if ok and shared and os.path.exists(llama2):
                ref_dir = tokenizer_ref.repair_llama2(shared, os.path.join(tmp, "llama2"))
                # That file predates transformers marking <unk>, <s>, </s> normalized=false (as its
                # LlamaConverter writes them today and as a GGUF's control tokens are read).
                ref_json = os.path.join(ref_dir, "tokenizer.json")
                j = json.load(open(ref_json, encoding="utf-8"))
                for a in j["added_tokens"]:
                    a["normalized"] = False
                json.dump(j, open(ref_json, "w", encoding="utf-8"), ensure_ascii=False)
                path = write_llama_gguf(tokenizer_ref.spm_pieces(llama2), os.path.join(tmp, "llama2-vocab.gguf"))
                ok = compare("llama-spm gguf", binary, path, Tokenizer.from_file(ref_json), records)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
