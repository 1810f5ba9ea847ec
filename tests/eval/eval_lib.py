"""Helpers shared by the eval drivers that build their own inputs: a small byte-level BPE
tokenizer.json, a seeded tiny Llama model directory with a given tokenizer.json, shards prepped
from text written by the test, and a shard rewriter (docs/formats.md) for corrupted shards."""
import hashlib
import json
import os
import shutil
import struct
import sys

import zstandard

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import fail, run, work_dir as _work_dir  # noqa: E402,F401
sys.path.insert(0, os.path.join(HERE, "..", "prep"))
from prep_ref import crc32c  # noqa: E402
from make_model import write_model  # noqa: E402  (tests/twin, put on sys.path by testlib)


def work_dir(name):
    return _work_dir("eval_tests", name)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
    return path


def tiny_model(out_dir, vocab_size, tokenizer_json=None, seed=1):
    """A random 2-layer Llama directory (make_model.py) of `vocab_size` rows, with a copy of
    `tokenizer_json` (a path) as its tokenizer.json when given."""
    write_model({"arch": "llama", "hidden_size": 32, "intermediate_size": 64, "n_layers": 2,
                 "n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "vocab_size": vocab_size,
                 "tie": False, "rope_theta": 10000.0, "rope_scaling": None, "dtype": "F32",
                 "seed": seed, "max_position_embeddings": 1024}, out_dir)
    if tokenizer_json:
        shutil.copy(tokenizer_json, os.path.join(out_dir, "tokenizer.json"))
    return out_dir


MEDICAL_TEXT = [
    "Metformin lowers HbA1c by about 1% in adults with type 2 diabetes.",
    "Hypertension is defined as a blood pressure of 130/80 mmHg or higher.",
    "Warfarin therapy requires regular INR monitoring; the usual target is 2.0-3.0.",
    "Acute appendicitis presents with periumbilical pain migrating to the right iliac fossa.",
    "Beta-blockers reduce mortality after myocardial infarction.",
    "Iron-deficiency anaemia: microcytic, hypochromic red cells and low ferritin.",
]


def prep_text(out_dir, tokenizer, paragraphs=MEDICAL_TEXT, copies=8, val_fraction=0.3):
    """Shards (stream packing) of the paragraphs, each repeated `copies` times with a counter
    so that dedup keeps them, tokenized with `tokenizer`."""
    corpus = out_dir + ".txt"
    with open(corpus, "w") as f:
        for k in range(copies):
            for p in paragraphs:
                f.write(f"{p} (note {k})\n\n")
    cfg = write_json(out_dir + "_prep.json",
                     {"tokenizer": tokenizer, "inputs": [{"path": corpus, "format": "text"}],
                      "val_fraction": val_fraction, "out_dir": out_dir})
    run(["prep", cfg])
    return out_dir


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


def tiny_model_with_tokenizer(out_dir):
    """tiny_model with small_tokenizer_json: no ../shared needed. Returns the directory."""
    os.makedirs(out_dir)
    tok = os.path.join(out_dir, "tokenizer.json")
    vocab = small_tokenizer_json(tok)
    return tiny_model(out_dir, vocab, None)


def rewrite_shard(shard_dir, name, edit):
    """Rewrites shard file `name` of `shard_dir` with its words replaced by edit(words), as a
    valid shard (docs/formats.md: zstd frames, CRC-32C frame index, doc table, footer) whose
    manifest entry (sha256, bytes) is updated: only the content differs."""
    path = os.path.join(shard_dir, name)
    data = open(path, "rb").read()
    foot = data[-64:]
    version, frame_tokens, n_tokens, n_docs, n_frames, _icrc, index_off, n_trained = \
        struct.unpack_from("<IIQQIIQQ", foot, 8)
    dctx = zstandard.ZstdDecompressor()
    words = []
    for f in range(n_frames):
        off, csize, _crc = struct.unpack_from("<QII", data, index_off + 16 * f)
        raw = dctx.decompress(data[off:off + csize], max_output_size=frame_tokens * 4)
        words.extend(struct.unpack(f"<{len(raw) // 4}I", raw))
    words = edit(words)
    docs = data[index_off + 16 * n_frames:index_off + 16 * n_frames + 8 * n_docs]
    cctx = zstandard.ZstdCompressor(level=3)
    body, index = b"", b""
    for f in range(n_frames):
        raw = struct.pack(f"<{len(words[f * frame_tokens:(f + 1) * frame_tokens])}I",
                          *words[f * frame_tokens:(f + 1) * frame_tokens])
        comp = cctx.compress(raw)
        index += struct.pack("<QII", len(body), len(comp), crc32c(comp + raw))
        body += comp
    head = b"MTSHARD1" + struct.pack("<IIQQIIQQI", version, frame_tokens, n_tokens, n_docs,
                                     n_frames, crc32c(index + docs), len(body), n_trained, 0)
    out = body + index + docs + head + struct.pack("<I", crc32c(head))
    with open(path, "wb") as f:
        f.write(out)
    mpath = os.path.join(shard_dir, "manifest.json")
    m = json.load(open(mpath))
    for split in m["splits"].values():
        for sh in split["shards"]:
            if sh["file"] == name:
                sh["sha256"], sh["bytes"] = hashlib.sha256(out).hexdigest(), len(out)
    write_json(mpath, m)
