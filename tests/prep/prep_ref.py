"""Independent Python side of the prep tests: a shard-directory reader written from
docs/formats.md, the cleaning rules and the document hash of docs/prep.md, window packing
as documented in data_prep/shard_reader.h, and helpers to run medtune."""

import json
import os
import re
import struct
import subprocess
import sys
import unicodedata

import zstandard

MASK64 = (1 << 64) - 1


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(77)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def env(name, default=None):
    v = os.environ.get(name, default)
    if v is None:
        skip(f"${name} is not set (run through ctest)")
    return v


# The trained stand-in (testlib.train_tokenizer flavour) of each tokenizer the prep tests
# name, with the special tokens its chat templates need.
FAMILY = {"gpt2": ("gpt2", ()), "llama2": ("spm", ()),
          "qwen2.5": ("qwen2", ("<|im_start|>", "<|im_end|>")),
          "llama3": ("llama3", ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
          "gemma3": ("spm-gemma", ("<start_of_turn>", "<end_of_turn>")),
          "qwen3": ("qwen2", ("<|im_start|>", "<|im_end|>", "<think>", "</think>")),
          "phi-3-mini": ("spm", ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"))}


def real_gemma3(tmp, chat_template=None):
    """[(label, path for medtune, tokenizer.json for HF)] of the real Gemma 3 vocabulary
    ($MEDTUNE_CACHE/gemma-3-270m-q4_k_m.gguf, tools/fetch_tokenizer_files.sh), or [] when absent.
    The reference is check_gguf_gemma's (transformers' GemmaTokenizer from the GGUF). That GGUF
    has no chat template: with `chat_template`, medtune reads a GGUF written here with the real
    file's tokenizer metadata plus tokenizer.chat_template, and the template also goes into a
    tokenizer_config.json beside the reference."""
    import gguf
    from check_gguf import gguf_scalar, gguf_strings
    from check_gguf_gemma import gemma_reference, gguf_ints
    path = os.path.join(env("MEDTUNE_CACHE"), "gemma-3-270m-q4_k_m.gguf")
    if not os.path.exists(path):
        print(f"note: {path} is absent (tools/fetch_tokenizer_files.sh): no real Gemma 3 vocabulary")
        return []
    d = os.path.join(tmp, "gemma3-real")
    os.makedirs(d, exist_ok=True)
    ref, _ = gemma_reference(path)
    ref.save(os.path.join(d, "tokenizer.json"))
    if chat_template is None:
        return [("gemma3 (real GGUF)", path, os.path.join(d, "tokenizer.json"))]
    r = gguf.GGUFReader(path)
    out = os.path.join(d, "gemma3-tokenizer.gguf")
    w = gguf.GGUFWriter(out, "gemma3")
    w.add_tokenizer_model("llama")
    w.add_token_list(gguf_strings(r, "tokenizer.ggml.tokens"))
    w.add_token_scores([float(r.fields["tokenizer.ggml.scores"].parts[i][0]) for i in r.fields["tokenizer.ggml.scores"].data])
    w.add_token_types(gguf_ints(r, "tokenizer.ggml.token_type"))
    for key, add in (("bos_token_id", w.add_bos_token_id), ("eos_token_id", w.add_eos_token_id),
                     ("unknown_token_id", w.add_unk_token_id), ("padding_token_id", w.add_pad_token_id),
                     ("add_bos_token", w.add_add_bos_token), ("add_eos_token", w.add_add_eos_token),
                     ("add_space_prefix", w.add_add_space_prefix)):
        add(gguf_scalar(r, "tokenizer.ggml." + key))
    w.add_chat_template(chat_template)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"chat_template": chat_template}, f)
    return [("gemma3 (real vocabulary, GGUF tokenizer.chat_template)", out, os.path.join(d, "tokenizer.json"))]


def tokenizers_for(name, tmp, chat_template=None):
    """[(label, path for medtune, tokenizer.json for HF)]: a tokenizer of the family of `name`
    trained on the sample data (testlib.train_tokenizer) always, then the staged tokenizer of
    $MEDTUNE_SHARED when present (through the tokenizer tests' tokenizer_ref, which repairs
    llama2's tokenizer.json and builds qwen2.5's and llama3's)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tokenizer"))
    import tokenizer_ref
    from testlib import train_tokenizer
    flavour, specials = FAMILY[name]
    d = train_tokenizer(flavour, os.path.join(tmp, "trained-" + name), specials=specials,
                        chat_template=chat_template)
    out = [(f"{name} family (trained-{flavour})", d, os.path.join(d, "tokenizer.json"))]
    if name == "gemma3":
        out += real_gemma3(tmp, chat_template)
    shared = env("MEDTUNE_SHARED")
    if not os.path.isdir(shared):
        print(f"note: {shared} is absent: the trained {name}-family tokenizer only")
        return out
    found = tokenizer_ref.tokenizer_set(shared, tmp, only=name, chat_template=chat_template)
    if name in found:
        out.append((name, found[name][0], found[name][1]))
    else:
        print(f"note: tokenizer {name} is absent from {shared}/tokenizers")
    return out


def sample_data(name):
    """A sample file written for the tests (tests/data/)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", name)


def run_medtune(args, expect_rc=0):
    bin_ = env("MEDTUNE_BIN")
    p = subprocess.run([bin_] + args, capture_output=True, text=True)
    if expect_rc is not None and p.returncode != expect_rc:
        fail(f"medtune {' '.join(args)} exited {p.returncode}, expected {expect_rc}\n"
             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def prep(tmp, cfg, extra=(), expect_rc=0, name="prep.json"):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        json.dump(cfg, f)
    return run_medtune(["prep", path, "--json"] + list(extra), expect_rc)


# --- CRC-32C, shards -------------------------------------------------------------------

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ _CRC[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def read_shard(path, check_crc=True):
    """Returns the list of uint32 words of one shard file (token | doc start | trained)."""
    data = open(path, "rb").read()
    foot = data[-64:]
    if foot[:8] != b"MTSHARD1":
        raise ValueError(f"{path}: bad magic")
    if struct.unpack_from("<I", foot, 60)[0] != crc32c(foot[:60]):
        raise ValueError(f"{path}: footer crc")
    version, frame_tokens, n_tokens, n_docs, n_frames, index_crc, index_off, n_trained = \
        struct.unpack_from("<IIQQIIQQ", foot, 8)
    assert version == 1
    index = data[index_off:index_off + 16 * n_frames]
    docs = data[index_off + 16 * n_frames:index_off + 16 * n_frames + 8 * n_docs]
    if check_crc and crc32c(index + docs) != index_crc:
        raise ValueError(f"{path}: index crc")
    words = []
    dctx = zstandard.ZstdDecompressor()
    for f in range(n_frames):
        off, csize, crc = struct.unpack_from("<QII", index, 16 * f)
        raw = dctx.decompress(data[off:off + csize], max_output_size=frame_tokens * 4)
        if check_crc and crc32c(data[off:off + csize] + raw) != crc:
            raise ValueError(f"{path}: frame {f} crc")
        words.extend(struct.unpack(f"<{len(raw) // 4}I", raw))
    assert len(words) == n_tokens
    starts = list(struct.unpack(f"<{n_docs}Q", docs))
    assert starts == [i for i, w in enumerate(words) if w & 0x40000000]
    assert n_trained == sum(1 for w in words if w & 0x80000000)
    return words


def read_split(out_dir, split):
    m = json.load(open(os.path.join(out_dir, "manifest.json")))
    words = []
    for sh in m["splits"][split]["shards"]:
        words.extend(read_shard(os.path.join(out_dir, sh["file"])))
    return m, words


def split_docs(words):
    """[(tokens, trained flags)] per document of a word stream."""
    docs = []
    for w in words:
        if w & 0x40000000 or not docs:
            docs.append(([], []))
        docs[-1][0].append(w & 0x3FFFFFFF)
        docs[-1][1].append(1 if w & 0x80000000 else 0)
    return docs


# --- cleaning and hashing (docs/prep.md) ---------------------------------------------

_SPACES = {0x20, 0x09, 0xA0, 0x1680, 0x202F, 0x205F, 0x3000} | set(range(0x2000, 0x200B))
_NEWLINES = {0x0A, 0x0D, 0x0C, 0x0B, 0x85, 0x2028, 0x2029}
_DROPPED = {0x200B, 0x2060, 0xFEFF}


def clean(text):
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n")
    out, pend_space, pend_nl = [], False, 0
    for ch in text:
        cp = ord(ch)
        if cp in _SPACES:
            pend_space = True
        elif cp in _NEWLINES:
            pend_nl += 1
            pend_space = False
        elif cp < 0x20 or cp == 0x7F or 0x80 <= cp < 0xA0 or cp in _DROPPED:
            continue
        else:
            if out:
                if pend_nl:
                    out.append("\n\n" if pend_nl > 1 else "\n")
                elif pend_space:
                    out.append(" ")
            pend_space, pend_nl = False, 0
            out.append(ch)
    return "".join(out)


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & MASK64


def _fmix(k):
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & MASK64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & MASK64
    k ^= k >> 33
    return k


def doc_hash(data: bytes):
    a, b = 0x9E3779B97F4A7C15, 0x632BE59BD9B4E019
    n = len(data)
    full = n - n % 8
    words = list(struct.unpack_from(f"<{full // 8}Q", data)) if full else []
    words.append(int.from_bytes(data[full:] + b"\0" * (8 - (n - full)), "little"))
    for w in words:
        a = _rotl(((a ^ w) * 0x87C37B91114253D5) & MASK64, 29)
        b = _rotl((((b + w) & MASK64) * 0x4CF5AD432745937F) & MASK64, 31) ^ a
    lo = _fmix(a ^ n)
    hi = _fmix((b + lo) & MASK64)
    return lo, hi


def is_val(data: bytes, val_fraction):
    lo, _ = doc_hash(data)
    return (lo >> 11) * 2.0 ** -53 < val_fraction


# --- windows (data_prep/shard_reader.h) ----------------------------------------------

def windows(words, seq_len, whole, pad_id):
    """List of (tokens[T+1], mask[T], doc[T], pos[T]) as the reader documents them."""
    W = seq_len + 1
    pad_id = pad_id if pad_id >= 0 else 0
    wins = []
    if not whole:
        n = (len(words) - 1) // seq_len if words else 0
        chunks = [words[i * seq_len:i * seq_len + W] for i in range(n)]
        fills = [W] * n
    else:
        docs, cur = [], None
        for w in words:
            if w & 0x40000000:
                cur = []
                docs.append(cur)
            cur.append(w)
        chunks, fills, win = [], [], None
        for d in docs:
            d = d[:W]
            if win is None or len(win) + len(d) > W:
                if win is not None:
                    chunks.append(win)
                win = []
            win.extend(d)
        if win is not None:
            chunks.append(win)
        fills = [len(c) for c in chunks]
        chunks = [c + [pad_id | (0x40000000 if k == 0 else 0) for k in range(W - len(c))] for c in chunks]
    for c, filled in zip(chunks, fills):
        toks = [w & 0x3FFFFFFF for w in c]
        mask = [1 if (k < filled and c[k] & 0x80000000) else 0 for k in range(1, W)]
        doc, pos, d, p = [], [], 0, 0
        for k in range(seq_len):
            if k > 0 and c[k] & 0x40000000:
                d, p = d + 1, 0
            doc.append(d)
            pos.append(p)
            p += 1
        wins.append((toks, mask, doc, pos))
    return wins


def dump_windows(out_dir, split, seq_len, scrambled=False):
    """The C reader's windows, through tests/test_prep_reader (scrambled: random-order reads
    are checked against fresh sequential ones first)."""
    exe = os.path.join(env("MEDTUNE_TEST_BIN"), "test_prep_reader")
    args = [exe, out_dir, split, str(seq_len)] + (["--order"] if scrambled else [])
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"test_prep_reader {out_dir} {split} {seq_len}: exit {p.returncode}: {p.stdout}{p.stderr}")
    return [tuple(w) for w in (json.loads(line) for line in p.stdout.splitlines())]


