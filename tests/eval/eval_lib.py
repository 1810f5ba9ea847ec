"""Helpers shared by the eval drivers that build their own inputs: a small byte-level BPE
tokenizer.json, a seeded tiny Llama model directory with a given tokenizer.json, shards prepped
from text written by the test, a shard rewriter (docs/formats.md) for corrupted shards, and small
benchmark files in the four formats of `medtune eval --mcq` (PubMedQA, MedQA, MedMCQA, MMLU)
built from the quickstart sample, with the random-weight models the checks score them with."""
import csv
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
from testlib import write_json  # noqa: E402,F401
sys.path.insert(0, os.path.join(HERE, "..", "prep"))
from prep_ref import crc32c  # noqa: E402
from fresh_lib import LLAMA, fresh_model, quickstart_dir  # noqa: E402,F401
from make_model import write_model  # noqa: E402  (tests/twin, put on sys.path by testlib)


def work_dir(name):
    return _work_dir("eval_tests", name)


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


def first_sentence(text):
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


def sample_pairs():
    with open(os.path.join(quickstart_dir(), "medqa.jsonl")) as f:
        return [json.loads(line) for line in f]


def sample_benchmarks(out_dir, n=12):
    """Files of each benchmark format with n items: the question of quickstart pair i, its own
    answer's first sentence as the gold option (at position i % 4) and three other pairs'
    first sentences as distractors; PubMedQA items take the clinical notes as contexts and
    cycle through yes / no / maybe. Returns {format: path} like eval_ref.dataset_paths."""
    pairs = sample_pairs()
    notes = [p for p in open(os.path.join(quickstart_dir(), "clinical_notes.txt")).read()
             .split("\n\n") if p.strip()]
    os.makedirs(out_dir, exist_ok=True)
    items = []
    for i in range(n):
        others = [pairs[(i + k) % len(pairs)] for k in (7, 19, 31)]
        options = [first_sentence(p["output"]) for p in others]
        options.insert(i % 4, first_sentence(pairs[i]["output"]))
        items.append((pairs[i]["instruction"], options, i % 4))

    paths = {"medqa": os.path.join(out_dir, "medqa_test.jsonl"),
             "medmcqa": os.path.join(out_dir, "medmcqa_dev.json"),
             "pubmedqa": os.path.join(out_dir, "pubmedqa_test_set.json"),
             "mmlu": os.path.join(out_dir, "mmlu")}
    with open(paths["medqa"], "w") as f:
        for q, opts, gold in items:
            f.write(json.dumps({"question": q, "answer": opts[gold],
                                "options": dict(zip("ABCD", opts)),
                                "meta_info": "step1", "answer_idx": "ABCD"[gold]}) + "\n")
    with open(paths["medmcqa"], "w") as f:
        for i, (q, opts, gold) in enumerate(items):
            f.write(json.dumps({"question": q, "exp": None, "cop": gold + 1,
                                "opa": opts[0], "opb": opts[1], "opc": opts[2], "opd": opts[3],
                                "subject_name": "Medicine", "id": f"sample-{i:04d}"}) + "\n")
    decisions = ["yes", "no", "maybe"]
    pubmedqa = {}
    for i, (q, _, _) in enumerate(items):
        note = notes[i % len(notes)]
        pubmedqa[str(31000000 + 17 * i)] = {
            "QUESTION": q, "CONTEXTS": [s.strip() + "." for s in note.split(". ") if s][:3],
            "LABELS": ["BACKGROUND", "METHODS", "RESULTS"], "final_decision": decisions[i % 3]}
    with open(paths["pubmedqa"], "w") as f:
        json.dump(pubmedqa, f, indent=1)
    # Two subjects; answers hold commas and quotes, so the CSV needs quoting.
    os.makedirs(paths["mmlu"], exist_ok=True)
    half = n // 2
    for name, part in (("clinical_knowledge_test.csv", items[:half]),
                       ("professional_medicine_test.csv", items[half:])):
        with open(os.path.join(paths["mmlu"], name), "w", newline="") as f:
            w = csv.writer(f)
            for q, opts, gold in part:
                w.writerow([q] + opts + ["ABCD"[gold]])
    return paths


def pubmedqa_gold(paths, out_dir):
    """A test_ground_truth.json for every other item of the sample PubMedQA file, with the
    decision flipped, so the reader must take the gold file's answers and items."""
    data = json.load(open(paths["pubmedqa"]))
    flip = {"yes": "no", "no": "maybe", "maybe": "yes"}
    gold = {k: flip[v["final_decision"]] for i, (k, v) in enumerate(data.items()) if i % 2}
    path = os.path.join(out_dir, "pubmedqa_test_ground_truth.json")
    with open(path, "w") as f:
        json.dump(gold, f)
    return path


def sharpen_head(model_dir, scale):
    """Multiplies lm_head.weight of a one-file model directory by `scale`. A fresh_model's
    logits have std ~1, so every token scores near log(1/V) whatever the context and a choice's
    log-likelihood follows its token count; sharper logits make the answers depend on the hidden
    state, so an adapter can change them."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    path = os.path.join(model_dir, "model.safetensors")
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        w = {k: f.get_tensor(k) for k in f.keys()}
    w["lm_head.weight"] = (w["lm_head.weight"] * scale).contiguous()
    save_file(w, path, metadata=meta)
    return model_dir
