#!/usr/bin/env python3
"""Builds English medical preference pairs with self-generated negatives (SPIN-style).

The chosen answer of a pair is a reference answer written by people (MedQuAD's NIH pages or
medAlpaca's WikiDoc answers); the rejected answer is what the model to be tuned says to the
same question, generated greedily by `medtune generate` before preference tuning. DPO then
moves the model from its own answers towards the references. The data stays where it is:
this script is the recipe, run against the user's copy of the sources.

  tools/self_negatives.py --model MODEL [--adapter DIR] --medquad DIR --medalpaca FILE \
      --n 240 --val 40 --out DIR

writes DIR/train.jsonl and DIR/val.jsonl in TRL's conversational layout
({"prompt": [user], "chosen": [assistant], "rejected": [assistant]}, which `prep` reads as
format `preference`), and DIR/recipe.json with the arguments, source hashes and counts.
The selection is reproducible: records are ordered by the SHA-256 of (seed, question) and
taken in that order, so the same sources and seed give the same pairs.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET


def die(msg):
    print(f"medtune: error: {msg}", file=sys.stderr)
    sys.exit(1)


def squash(text):
    """Whitespace runs to one space inside lines, blank lines dropped (MedQuAD's XML indents)."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def read_medquad(root):
    """(question, answer, source) for every QAPair with an answer under root (*.xml)."""
    out = []
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if not name.endswith(".xml"):
                continue
            path = os.path.join(dirpath, name)
            try:
                doc = ET.parse(path).getroot()
            except ET.ParseError as e:
                die(f"{path}: {e}")
            for pair in doc.iter("QAPair"):
                q, a = pair.findtext("Question"), pair.findtext("Answer")
                if q and a:
                    out.append((squash(q), squash(a), f"{path}#{pair.get('pid')}"))
    return out


def read_medalpaca(path):
    """(question, answer, source) for every Alpaca record with an input and an output."""
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)
    except (OSError, ValueError) as e:
        die(f"{path}: {e}")
    if not isinstance(records, list):
        die(f"{path}: expected a JSON list of Alpaca records")
    out = []
    for i, r in enumerate(records):
        if isinstance(r, dict) and r.get("input") and r.get("output"):
            out.append((squash(r["input"]), squash(r["output"]), f"{path}#{i}"))
    return out


def file_sha256(path):
    h = hashlib.sha256()
    if os.path.isdir(path):
        for dirpath, _, files in sorted(os.walk(path)):
            for name in sorted(files):
                with open(os.path.join(dirpath, name), "rb") as f:
                    h.update(f.read())
    else:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def select(records, n, seed, max_answer_words):
    """n records with distinct questions, in the seeded hash order, answers not too long."""
    keyed = sorted(records, key=lambda r: hashlib.sha256(f"{seed}\0{r[0]}".encode()).digest())
    seen, out = set(), []
    for q, a, src in keyed:
        if q.lower() in seen or len(a.split()) > max_answer_words:
            continue
        seen.add(q.lower())
        out.append((q, a, src))
        if len(out) == n:
            break
    return out


def generate(args, question):
    cmd = [args.medtune, "generate", args.model, "--chat", question, "--max-new",
           str(args.max_new), "--threads", str(args.threads), "--json"]
    if args.adapter:
        cmd += ["--adapter", args.adapter]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        # medtune's own line already names the file and the problem: pass it on as it is.
        lines = p.stderr.strip().splitlines() or [f"medtune generate exited {p.returncode}"]
        die(lines[-1].removeprefix("medtune: error: "))
    return json.loads(p.stdout)


def write_atomic(path, text):
    """Temporary file, fsync, rename: a killed run never leaves a file that looks complete."""
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_jsonl(path, rows):
    write_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="the model to be tuned (HF dir or .gguf)")
    ap.add_argument("--adapter", help="its current adapter (e.g. the SFT adapter before DPO)")
    ap.add_argument("--medquad", help="MedQuAD directory (XML files, searched recursively)")
    ap.add_argument("--medalpaca", help="medAlpaca JSON (Alpaca records)")
    ap.add_argument("--n", type=int, default=240, help="training pairs")
    ap.add_argument("--val", type=int, default=40, help="held-out pairs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-new", type=int, default=256, help="tokens of a generated answer")
    ap.add_argument("--max-answer-words", type=int, default=120,
                    help="skip references longer than this (a pair must fit the window)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--medtune", default=os.environ.get("MEDTUNE_BIN", "medtune"))
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not args.medquad and not args.medalpaca:
        ap.error("give --medquad and/or --medalpaca")
    if args.n < 1 or args.val < 0:
        ap.error("--n must be >= 1 and --val >= 0")

    records, sources = [], {}
    for path, reader in ((args.medquad, read_medquad), (args.medalpaca, read_medalpaca)):
        if path:
            if not os.path.exists(path):
                die(f"{path}: no such file or directory")
            got = reader(path)
            records += got
            sources[path] = {"records": len(got), "sha256": file_sha256(path)}
    picked = select(records, args.n + args.val, args.seed, args.max_answer_words)
    if len(picked) < args.n + args.val:
        die(f"{args.out}: only {len(picked)} usable records for {args.n + args.val} pairs")

    os.makedirs(args.out, exist_ok=True)
    rows, identical, t0 = [], 0, time.time()
    for i, (q, ref, src) in enumerate(picked):
        gen = generate(args, q)
        answer = gen["text"].strip()
        if answer == ref.strip() or not answer:
            identical += 1
            continue
        rows.append({"prompt": [{"role": "user", "content": q}],
                     "chosen": [{"role": "assistant", "content": ref}],
                     "rejected": [{"role": "assistant", "content": answer}],
                     "source": src, "rejected_stop": gen["stop"]})
        done = i + 1
        eta = (time.time() - t0) / done * (len(picked) - done)
        print(f"pair {done}/{len(picked)}  {gen['new_tokens']} tokens  "
              f"{gen['tokens_per_s']:.1f} tok/s  eta {eta:.0f} s", file=sys.stderr)
    val, train = rows[:args.val], rows[args.val:]
    write_jsonl(os.path.join(args.out, "train.jsonl"), train)
    write_jsonl(os.path.join(args.out, "val.jsonl"), val)
    recipe = {"model": args.model, "adapter": args.adapter, "seed": args.seed,
              "max_new": args.max_new, "max_answer_words": args.max_answer_words,
              "sources": sources, "train_pairs": len(train), "val_pairs": len(val),
              "skipped_identical_or_empty": identical,
              "seconds": round(time.time() - t0, 1)}
    write_atomic(os.path.join(args.out, "recipe.json"), json.dumps(recipe, indent=1) + "\n")
    print(f"{len(train)} train and {len(val)} val pairs in {args.out} "
          f"({identical} skipped, {recipe['seconds']} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
