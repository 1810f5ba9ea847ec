"""Shared helpers of the tokenizer parity tests: which tokenizers to test, how to build the
Hugging Face `tokenizers` reference for each, and how to run `medtune tokenize`.

Always tested: tokenizers of each supported family trained by HF `tokenizers` on the sample
data of the checkout (testlib.train_tokenizer; fresh_tokenizer_set). Also, when present,
reference tokenizers from the real files in $MEDTUNE_SHARED. Where a model has no usable
tokenizer.json, it is built here with `tokenizers` itself from the model's own vocabulary
files, the way transformers' converters do it, and checked against llama.cpp's reference
vectors (HF encodings of the real models) before it is used.
"""
import json
import os
import struct
import subprocess
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import LLAMA3_PATTERN, QWEN2_PATTERN, train_tokenizer  # noqa: E402

SKIP = 77


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(SKIP)


def env_paths():
    """($MEDTUNE_SHARED or None when absent, the medtune binary)."""
    shared = os.environ.get("MEDTUNE_SHARED", "")
    binary = os.environ.get("MEDTUNE_BIN", "")
    if not binary or not os.access(binary, os.X_OK):
        print("FAIL: MEDTUNE_BIN (%s) is not an executable" % binary)
        sys.exit(1)
    if not shared or not os.path.isdir(shared):
        print("note: MEDTUNE_SHARED (%s) is absent: tokenizers trained on the sample data only" % shared)
        shared = None
    return shared, binary


# The family of each real tokenizer: its fresh-clone stand-in is a tokenizer of that family
# trained on the sample data (testlib.TOKENIZER_FLAVOURS).
FAMILY = {"gpt2": "gpt2", "phi-2": "gpt2", "qwen2.5": "qwen2", "llama3": "llama3", "llama2": "spm",
          "phi-3-mini": "spm", "tinystories-656k": "spm", "stories260K": "spm",
          "mistral-7b-v0.1": "spm-metaspace", "gemma3": "spm-gemma", "qwen3": "qwen2"}

# The tokens Qwen3's tokenizer_config.json (Qwen/Qwen3-0.6B) adds after Qwen2.5's, none special.
# Its vocabulary and merges are Qwen2.5's: no Qwen3 tokenizer file is at hand (docs/tokenizer.md).
QWEN3_ADDED = ((151665, "<tool_response>"), (151666, "</tool_response>"), (151667, "<think>"), (151668, "</think>"))


def fresh_tokenizer_set(tmp, only=None):
    """"trained-<flavour>" -> (path given to medtune, tokenizer.json for HF, None, lossless) for
    each tokenizer family, trained with HF `tokenizers` (or only the flavour `only`)."""
    out = {}
    for flavour in ("gpt2", "qwen2", "llama3", "spm", "spm-metaspace", "spm-gemma"):
        if only is None or only == flavour:
            d = train_tokenizer(flavour, os.path.join(tmp, "trained-" + flavour))
            out["trained-" + flavour] = (d, os.path.join(d, "tokenizer.json"), None, not flavour.startswith("spm"))
    return out


def spm_pieces(path):
    """(piece, score, type) of a SentencePiece model, read from its protobuf by hand."""
    b = open(path, "rb").read()

    def varint(i):
        r = s = 0
        while True:
            c = b[i]
            i += 1
            r |= (c & 0x7F) << s
            s += 7
            if c < 0x80:
                return r, i

    out, i = [], 0
    while i < len(b):
        key, i = varint(i)
        field, wire = key >> 3, key & 7
        if wire == 2:
            n, i = varint(i)
            if field == 1:
                end, piece, score, ty = i + n, None, 0.0, 1
                while i < end:
                    k2, i = varint(i)
                    f2, w2 = k2 >> 3, k2 & 7
                    if w2 == 2:
                        n2, i = varint(i)
                        piece = b[i:i + n2].decode("utf-8")
                        i += n2
                    elif w2 == 5:
                        score = struct.unpack("<f", b[i:i + 4])[0]
                        i += 4
                    else:
                        v, i = varint(i)
                        if f2 == 3:
                            ty = v
                out.append((piece, score, ty))
            else:
                i += n
        elif wire == 0:
            _, i = varint(i)
        elif wire == 5:
            i += 4
        elif wire == 1:
            i += 8
        else:
            raise ValueError("bad protobuf wire type %d in %s" % (wire, path))
    return out


def repair_llama2(shared, out_dir):
    """The staged llama2 tokenizer.json lost its U+00A0 characters (they became ASCII spaces),
    which `tokenizers` rejects. Restore them, prove the vocabulary then equals tokenizer.model
    piece for piece, and write merges as pairs so no space is ambiguous."""
    src = os.path.join(shared, "tokenizers", "llama2")
    j = json.load(open(os.path.join(src, "tokenizer.json"), encoding="utf-8"))
    vocab = {k.replace(" ", "\u00a0"): v for k, v in j["model"]["vocab"].items()}
    pieces = spm_pieces(os.path.join(src, "tokenizer.model"))
    if {p: i for i, (p, _, _) in enumerate(pieces)} != vocab:
        raise SystemExit("FAIL: repaired llama2 vocabulary differs from tokenizer.model")
    merges = []
    for m in j["model"]["merges"]:
        cuts = [i for i, c in enumerate(m) if c == " "]
        fixed = [(m[:i].replace(" ", "\u00a0"), m[i + 1:].replace(" ", "\u00a0")) for i in cuts]
        fixed = [(a, b) for a, b in fixed if a in vocab and b in vocab and a + b in vocab]
        if len(fixed) != 1:
            raise SystemExit("FAIL: cannot repair llama2 merge %r" % m)
        merges.append(list(fixed[0]))
    j["model"]["vocab"] = vocab
    j["model"]["merges"] = merges
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        with open(os.path.join(src, name), "rb") as a, open(os.path.join(out_dir, name), "wb") as b:
            b.write(a.read())
    return out_dir


def build_qwen25(shared, out_dir):
    """Qwen2.5's tokenizer.json as transformers' Qwen2TokenizerFast converter writes it."""
    src = os.path.join(shared, "tokenizers", "qwen2.5")
    tok = Tokenizer(models.BPE.from_file(os.path.join(src, "vocab.json"), os.path.join(src, "merges.txt"),
                                         byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    cfg = json.load(open(os.path.join(src, "tokenizer_config.json"), encoding="utf-8"))
    for sid, a in sorted(cfg["added_tokens_decoder"].items(), key=lambda kv: int(kv[0])):
        t = AddedToken(a["content"], single_word=a["single_word"], lstrip=a["lstrip"], rstrip=a["rstrip"],
                       normalized=a["normalized"], special=a["special"])
        tok.add_tokens([t])
        if tok.token_to_id(a["content"]) != int(sid):
            raise SystemExit("FAIL: qwen2.5 added token %r got id %s, expected %s"
                             % (a["content"], tok.token_to_id(a["content"]), sid))
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(src, "tokenizer_config.json"), "rb") as a, \
            open(os.path.join(out_dir, "tokenizer_config.json"), "wb") as b:
        b.write(a.read())
    return out_dir


def build_qwen3(shared, out_dir, chat_template=None):
    """Qwen3's tokenizer: Qwen2.5's (build_qwen25) with QWEN3_ADDED, and `chat_template` in its
    tokenizer_config.json when given (else Qwen2.5's)."""
    build_qwen25(shared, out_dir)
    tok = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    for tid, content in QWEN3_ADDED:
        tok.add_tokens([AddedToken(content, single_word=False, lstrip=False, rstrip=False, normalized=False,
                                   special=False)])
        if tok.token_to_id(content) != tid:
            raise SystemExit("FAIL: qwen3 added token %r got id %s, expected %d" % (content, tok.token_to_id(content), tid))
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    cfg_path = os.path.join(out_dir, "tokenizer_config.json")
    cfg = json.load(open(cfg_path, encoding="utf-8"))
    for tid, content in QWEN3_ADDED:
        cfg["added_tokens_decoder"][str(tid)] = {"content": content, "lstrip": False, "normalized": False,
                                                 "rstrip": False, "single_word": False, "special": False}
    if chat_template is not None:
        cfg["chat_template"] = chat_template
    json.dump(cfg, open(cfg_path, "w", encoding="utf-8"), ensure_ascii=False, indent=2)
    return out_dir


def build_llama3(shared, out_dir):
    """Llama-3's tokenizer.json from the GPT-2 style encoder.json / vocab.bpe (ignore_merges,
    Llama-3 split pattern, byte-level), with its first two special tokens."""
    src = os.path.join(shared, "tokenizers", "llama3.2-ollama")
    vocab = json.load(open(os.path.join(src, "encoder.json"), encoding="utf-8"))
    merges = [tuple(line.split(" ")) for line in open(os.path.join(src, "vocab.bpe"), encoding="utf-8").read().split("\n")
              if line and not line.startswith("#version")]
    tok = Tokenizer(models.BPE(vocab, merges, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|begin_of_text|>", special=True, normalized=False),
                            AddedToken("<|end_of_text|>", special=True, normalized=False)])
    if tok.token_to_id("<|begin_of_text|>") != 128000:
        raise SystemExit("FAIL: llama3 <|begin_of_text|> is not id 128000")
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                       special_tokens=[("<|begin_of_text|>", 128000)])
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    return out_dir


def tokenizer_set(shared, tmp, only=None, chat_template=None):
    """name -> (path given to medtune, tokenizer.json for HF, llama.cpp vector name or None, lossless).
    With `only`, just that tokenizer is prepared (building some takes seconds). Without
    $MEDTUNE_SHARED (shared None), none. `chat_template` goes into the built qwen3's config."""
    if shared is None:
        return {}
    T = os.path.join(shared, "tokenizers")
    M = os.path.join(shared, "models")
    out = {}

    def add(name, path, json_path, vectors, lossless):
        if os.path.exists(json_path):
            out[name] = (path, json_path, vectors, lossless)

    def want(name, needed):
        return (only is None or only == name) and os.path.exists(needed)

    for name, base, vectors, lossless in (("gpt2", T, "gpt-2", True), ("phi-2", T, None, True),
                                          ("phi-3-mini", T, "phi-3", False), ("mistral-7b-v0.1", T, None, False),
                                          ("tinystories-656k", M, None, False), ("stories260K", M, None, False)):
        if want(name, os.path.join(base, name)):
            add(name, os.path.join(base, name), os.path.join(base, name, "tokenizer.json"), vectors, lossless)
    if want("llama2", os.path.join(T, "llama2", "tokenizer.json")):
        d = repair_llama2(shared, os.path.join(tmp, "llama2"))
        add("llama2", d, os.path.join(d, "tokenizer.json"), "llama-spm", False)
    if want("qwen2.5", os.path.join(T, "qwen2.5", "vocab.json")):
        d = build_qwen25(shared, os.path.join(tmp, "qwen2.5"))
        add("qwen2.5", d, os.path.join(d, "tokenizer.json"), "qwen2", True)
    if want("qwen3", os.path.join(T, "qwen2.5", "vocab.json")):
        d = build_qwen3(shared, os.path.join(tmp, "qwen3"), chat_template)
        add("qwen3", d, os.path.join(d, "tokenizer.json"), "qwen2", True)
    if want("llama3", os.path.join(T, "llama3.2-ollama", "encoder.json")):
        d = build_llama3(shared, os.path.join(tmp, "llama3"))
        add("llama3", d, os.path.join(d, "tokenizer.json"), "llama-bpe", True)
    return out


def reference_vectors(shared, name):
    """[(text, ids)] from llama.cpp's ggml-vocab-<name>.gguf.inp/.out (add_special_tokens=False)."""
    d = os.path.join(shared, "tokenizers", "_reference_vectors_llamacpp")
    inp = open(os.path.join(d, name + ".inp"), encoding="utf-8").read()
    texts = inp.split("\n__ggml_vocab_test__\n")
    if texts and texts[-1] == "":
        texts.pop()
    outs = open(os.path.join(d, name + ".out"), encoding="utf-8").read().split("\n")
    if outs and outs[-1] == "":
        outs.pop()
    if len(texts) != len(outs):
        raise SystemExit("FAIL: %s: %d texts but %d id lines" % (name, len(texts), len(outs)))
    return [(t, [int(x) for x in o.split()]) for t, o in zip(texts, outs)]


def medtune_encode(binary, model, texts, add_special=True):
    """Encodes texts (str) with `medtune tokenize --json-input`; returns lists of ids."""
    args = [binary, "tokenize", model, "--json-input"] + ([] if add_special else ["--no-special"])
    data = "".join(json.dumps(t) + "\n" for t in texts).encode("utf-8")
    r = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit("FAIL: %s exited %d: %s" % (" ".join(args), r.returncode, r.stderr.decode(errors="replace")))
    lines = r.stdout.decode("utf-8").split("\n")[:-1]
    if len(lines) != len(texts):
        raise SystemExit("FAIL: medtune printed %d lines for %d inputs" % (len(lines), len(texts)))
    return [json.loads(x) for x in lines]


def medtune_encode_raw(binary, model, lines, add_special=True):
    """Encodes raw byte lines (no b'\\n' inside) through stdin as they are."""
    args = [binary, "tokenize", model] + ([] if add_special else ["--no-special"])
    r = subprocess.run(args, input=b"".join(x + b"\n" for x in lines), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit("FAIL: %s exited %d: %s" % (" ".join(args), r.returncode, r.stderr.decode(errors="replace")))
    out = [json.loads(x) for x in r.stdout.decode("utf-8").split("\n")[:-1]]
    if len(out) != len(lines):
        raise SystemExit("FAIL: medtune printed %d lines for %d inputs" % (len(out), len(lines)))
    return out


def medtune_decode(binary, model, id_lists, skip_special):
    args = [binary, "tokenize", model, "--decode", "--json"] + (["--no-special"] if skip_special else [])
    data = "".join(json.dumps(x) + "\n" for x in id_lists).encode()
    r = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit("FAIL: %s exited %d: %s" % (" ".join(args), r.returncode, r.stderr.decode(errors="replace")))
    return [json.loads(x)["text"] for x in r.stdout.decode("utf-8").split("\n")[:-1]]


def normalized(hf):
    """x -> x after the tokenizer's normalizer (NFC for Qwen2): what a lossless decode returns."""
    if hf.normalizer is None:
        return lambda x: x
    return hf.normalizer.normalize_str


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def report_mismatch(what, where, text, got, want):
    i = first_diff(got, want)
    lo = max(0, i - 8)
    print("FAIL: %s: %s" % (what, where))
    print("  text:    %r" % (text[:300] + ("..." if len(text) > 300 else "")))
    print("  medtune: ...%s (len %d, first difference at %d)" % (got[lo:i + 8], len(got), i))
    print("  HF:      ...%s (len %d)" % (want[lo:i + 8], len(want)))
