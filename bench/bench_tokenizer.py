#!/usr/bin/env python3
"""Tokenizer throughput: medtune next to Hugging Face `tokenizers`, single-threaded, on the
PubMed abstracts of $MEDTUNE_SHARED/data/medical_abstracts_tc (one document per abstract)
and the PubMedQA contexts, in the same run.

medtune: `medtune tokenize MODEL --json-input --count` (the time of the encode calls only,
one document per call, as `prep` tokenizes). HF: RAYON_NUM_THREADS=1, Tokenizer.encode per
document and encode_batch, best of 3. Both produce identical ids (checked here too).

usage: bench/bench_tokenizer.py [MEDTUNE_BIN]   (default build/medtune)
"""
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "tokenizer"))
import tokenizer_ref  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def documents(shared):
    docs = []
    with open(os.path.join(shared, "data", "medical_abstracts_tc", "medical_tc_test.csv"), encoding="utf-8") as f:
        for row in csv.DictReader(f):
            docs.append(row["medical_abstract"])
    for name in ("ori_pqal.json", "test_set.json"):
        for rec in json.load(open(os.path.join(shared, "data", "pubmedqa", name), encoding="utf-8")).values():
            docs.append(" ".join(rec["CONTEXTS"]))
    return docs


def medtune_mb_s(binary, model, data):
    best = None
    for _ in range(3):
        r = subprocess.run([binary, "tokenize", model, "--json-input", "--count"], input=data,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
        c = json.loads(r.stdout)
        best = c if best is None or c["seconds"] < best["seconds"] else best
    return best


def main():
    shared = os.environ.get("MEDTUNE_SHARED", os.path.join(HERE, "..", "..", "shared"))
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build", "medtune")
    docs = documents(shared)
    nbytes = sum(len(d.encode()) for d in docs)
    data = "".join(json.dumps(d) + "\n" for d in docs).encode()
    print("%d documents, %.2f MB of PubMed abstracts and PubMedQA contexts; single thread, best of 3\n"
          % (len(docs), nbytes / 1e6))
    print("%-18s %14s %16s %18s %9s" % ("tokenizer", "medtune MB/s", "HF encode MB/s", "HF encode_batch MB/s", "speedup"))
    with tempfile.TemporaryDirectory() as tmp:
        toks = tokenizer_ref.tokenizer_set(shared, tmp)
        names = ["gpt2", "llama2", "mistral-7b-v0.1", "qwen2.5", "llama3"]
        for name in names:
            if name not in toks:
                continue
            model, json_path, _, _ = toks[name]
            hf = Tokenizer.from_file(json_path)
            c = medtune_mb_s(binary, model, data)
            t_enc = t_batch = None
            for _ in range(3):
                t0 = time.perf_counter()
                ids = [hf.encode(d).ids for d in docs]
                t1 = time.perf_counter()
                hf.encode_batch(docs)
                t2 = time.perf_counter()
                t_enc = min(t_enc or 1e9, t1 - t0)
                t_batch = min(t_batch or 1e9, t2 - t1)
            if c["tokens"] != sum(map(len, ids)):
                print("%s: token counts differ (medtune %d, HF %d)" % (name, c["tokens"], sum(map(len, ids))))
                return 1
            hf_best = nbytes / min(t_enc, t_batch) / 1e6
            print("%-18s %14.2f %16.2f %18.2f %8.2fx" % (name, c["mb_per_s"], nbytes / t_enc / 1e6,
                                                         nbytes / t_batch / 1e6, c["mb_per_s"] / hf_best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
