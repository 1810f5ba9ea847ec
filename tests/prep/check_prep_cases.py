"""prep behaviour: split determinism, corrupted shards, malformed inputs, PHI scrubbing.

Tokenizer: a GPT-2-family BPE trained on the sample data. Corpus: text written here and
tests/data/pubmed_sample.xml, plus the PubMed files of $MEDTUNE_SHARED when present.

usage: check_prep_cases.py determinism|corrupt|malformed|phi"""

import glob
import json
import os
import shutil
import sys
import tempfile

from tokenizers import Tokenizer

import prep_ref as R
from check_roundtrip import pubmed_docs


def gpt2(tmp):
    """A byte-level BPE of the GPT-2 family trained on the sample data: these cases are about
    prep's behaviour, which any tokenizer shows."""
    return os.path.join(R.tokenizers_for("gpt2", tmp)[0][2])


def pubmed_files(shared):
    """The PubMed sample written for the tests, and the real files of $MEDTUNE_SHARED when present."""
    return [R.sample_data("pubmed_sample.xml")] + \
        sorted(glob.glob(os.path.join(shared, "data", "pubmed_xml", "*.xml")))


def own_text_corpus(tmp, n, name="notes.txt", offset=0):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        for i in range(offset, offset + n):
            f.write(f"Observation {i}: the patient in bed {i % 13} had a temperature of "
                    f"{36 + i % 4}.{i % 10} degrees and a pulse of {60 + i % 40}.\n\n")
    return path


def docs_of(out, split):
    _, words = R.read_split(out, split)
    return [tuple(t) for t, _ in R.split_docs(words)]


def determinism(tmp, shared):
    tok = gpt2(tmp)
    a = own_text_corpus(tmp, 300)
    b = own_text_corpus(tmp, 200, "more.txt", offset=1000)
    pubmed = pubmed_files(shared)
    inputs = [{"path": a, "format": "text"}, {"path": b, "format": "text"}]
    inputs += [{"path": p, "format": "pubmed-xml"} for p in pubmed]
    base = {"tokenizer": tok, "val_fraction": 0.3, "shard_tokens": 2048}
    outs = []
    for k in range(2):
        out = os.path.join(tmp, f"run{k}")
        R.prep(tmp, dict(base, inputs=inputs, out_dir=out))
        outs.append(out)
    files = sorted(os.listdir(outs[0]))
    if files != sorted(os.listdir(outs[1])) or len(files) < 4:
        R.fail(f"runs wrote different files: {files} vs {sorted(os.listdir(outs[1]))}")
    for f in files:
        if open(os.path.join(outs[0], f), "rb").read() != open(os.path.join(outs[1], f), "rb").read():
            R.fail(f"two identical runs differ in {f}")
    # A document's split depends on its own text only: a run over a subset of the inputs,
    # in another order, puts each document in the same split.
    sub = os.path.join(tmp, "subset")
    R.prep(tmp, dict(base, inputs=list(reversed(inputs[1:])), out_dir=sub))
    for split in ("train", "val"):
        full, part = set(docs_of(outs[0], split)), docs_of(sub, split)
        missing = [d for d in part if d not in full]
        if missing:
            R.fail(f"{len(missing)} documents of the subset run changed split ({split})")
    n_val = len(docs_of(outs[0], "val"))
    n_all = n_val + len(docs_of(outs[0], "train"))
    if not 0.2 < n_val / n_all < 0.4:
        R.fail(f"val_fraction 0.3 gave {n_val} of {n_all} documents")
    print(f"OK: identical reruns ({len(files)} files), splits stable under subsetting, val {n_val}/{n_all}")


def corrupt(tmp, shared):
    tok = gpt2(tmp)
    src = own_text_corpus(tmp, 3000)
    out = os.path.join(tmp, "good")
    R.prep(tmp, {"tokenizer": tok, "inputs": [{"path": src, "format": "text"}], "val_fraction": 0,
                 "out_dir": out, "shard_tokens": 20000})
    R.run_medtune(["info", out])
    shard = sorted(glob.glob(os.path.join(out, "train-*.mtshard")))[1]
    name = os.path.basename(shard)
    size = os.path.getsize(shard)
    for what, where in (("frame data", size // 3), ("frame index", size - 64 - 8), ("footer", size - 30)):
        bad = os.path.join(tmp, "bad_" + what.replace(" ", "_"))
        shutil.copytree(out, bad)
        with open(os.path.join(bad, name), "r+b") as f:
            f.seek(where)
            b = f.read(1)
            f.seek(where)
            f.write(bytes([b[0] ^ 0x10]))
        p = R.run_medtune(["info", bad], expect_rc=1)
        err = p.stderr.strip()
        if not err.startswith("medtune: error: ") or name not in err or "corrupt" not in err:
            R.fail(f"flipped byte in the {what}: expected an error naming {name}, got {err!r}")
        exe = os.path.join(R.env("MEDTUNE_TEST_BIN"), "test_prep_reader")
        import subprocess
        q = subprocess.run([exe, bad, "train", "512"], capture_output=True, text=True)
        if q.returncode != 1 or name not in q.stdout:
            R.fail(f"reader on a flipped byte in the {what}: exit {q.returncode}, {q.stdout[-300:]!r}")
        print(f"  {what}: {err}")
    # Truncation and a missing manifest are caught too.
    bad = os.path.join(tmp, "bad_truncated")
    shutil.copytree(out, bad)
    with open(os.path.join(bad, name), "r+b") as f:
        f.truncate(size - 100)
    err = R.run_medtune(["info", bad], expect_rc=1).stderr
    if name not in err:
        R.fail(f"truncated shard: {err!r}")
    os.remove(os.path.join(bad, "manifest.json"))
    R.run_medtune(["info", bad], expect_rc=1)
    print("OK: corrupted, truncated and unfinished shard directories are refused")


def expect_error(tmp, cfg, *needles, extra=()):
    p = R.prep(tmp, cfg, extra=extra, expect_rc=1)
    err = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    if not err.startswith("medtune: error: ") or any(n not in err for n in needles):
        R.fail(f"expected an error with {needles}, got {p.stderr!r}")
    return err


def malformed(tmp, shared):
    tok = gpt2(tmp)
    out = os.path.join(tmp, "out")
    good = ["Aspirin irreversibly inhibits cyclooxygenase.", "Insulin lowers blood glucose."]

    # Bad JSON line: skipped and counted with its location, or fatal under strict.
    jl = os.path.join(tmp, "bad.jsonl")
    with open(jl, "w") as f:
        f.write(json.dumps({"text": good[0]}) + "\n{\"text\": \"unterminated\n" + json.dumps({"text": good[1]}) + "\n")
    cfg = {"tokenizer": tok, "inputs": [{"path": jl, "format": "jsonl"}], "out_dir": out, "val_fraction": 0}
    s = json.loads(R.prep(tmp, cfg).stdout)
    if s["dropped"]["malformed"] != 1 or s["documents_kept"] != 2 or f"{jl}:2" not in s["first_malformed"]:
        R.fail(f"bad JSON line: {s}")
    expect_error(tmp, dict(cfg, strict=True), f"{jl}:2", "bad JSON")

    # Wrong field type and a JSON array with one broken element.
    arr = os.path.join(tmp, "bad.json")
    with open(arr, "w") as f:
        f.write('[\n {"instruction": "Define fever.", "output": "A raised body temperature."},\n'
                ' {"instruction": 3, "output": "x"},\n {"instruction": "Define tachycardia.", "output": "A fast heart rate."}\n]\n')
    s = json.loads(R.prep(tmp, {"tokenizer": tok, "inputs": [{"path": arr, "format": "alpaca"}], "out_dir": out,
                                "template": "alpaca", "val_fraction": 0}).stdout)
    if s["dropped"]["malformed"] != 1 or s["documents_kept"] != 2 or f"{arr}:3" not in s["first_malformed"]:
        R.fail(f"alpaca array with a bad record: {s}")

    # Broken XML: records before the break are kept, the break is counted with its line.
    # Breaks 40 bytes after a record's end (inside the next record's first tag) and, in the
    # sample, inside a record's abstract: every record closed before the break is kept (their
    # number read by xml.etree from the intact part), the broken one is counted as malformed.
    sample = R.sample_data("pubmed_sample.xml")
    shared_xml = os.path.join(shared, "data", "pubmed_xml", "pubmedsample18n0001.xml")
    for pubmed, where in ((sample, "after"), (sample, "inside"), (shared_xml, "after")):
        if not os.path.exists(pubmed):
            continue
        data = open(pubmed, "rb").read()
        cut = data.index(b"</PubmedArticle>", len(data) // 2) + 40 if where == "after" else \
            data.index(b"Deficiency was found")
        intact = os.path.join(tmp, "intact.xml")
        open(intact, "wb").write(data[:data.rindex(b"</PubmedArticle>", 0, cut) + 16] + b"</PubmedArticleSet>\n")
        want = len(pubmed_docs([intact]))
        broken = os.path.join(tmp, "broken.xml")
        open(broken, "wb").write(data[:cut] + b"<Broken></PubmedArticle>\n")
        s = json.loads(R.prep(tmp, {"tokenizer": tok, "inputs": [{"path": broken, "format": "pubmed-xml"}],
                                    "out_dir": out, "val_fraction": 0}).stdout)
        if s["dropped"]["malformed"] != 1 or s["documents_kept"] != want or "broken XML" not in s["first_malformed"]:
            R.fail(f"broken XML {where} a record in a copy of {pubmed}: {s}, expected {want} documents kept")
        expect_error(tmp, {"tokenizer": tok, "inputs": [{"path": broken, "format": "pubmed-xml"}], "out_dir": out,
                           "strict": True}, broken, "broken XML")

    # Invalid UTF-8 in a text block and inside a JSON string.
    txt = os.path.join(tmp, "latin1.txt")
    open(txt, "wb").write(good[0].encode() + b"\n\nCaf\xe9 au lait\n\n" + good[1].encode() + b"\n")
    s = json.loads(R.prep(tmp, {"tokenizer": tok, "inputs": [{"path": txt, "format": "text"}], "out_dir": out,
                                "val_fraction": 0}).stdout)
    if s["dropped"]["malformed"] != 1 or f"{txt}:3" not in s["first_malformed"] or "UTF-8" not in s["first_malformed"]:
        R.fail(f"invalid UTF-8 in text: {s}")
    jb = os.path.join(tmp, "latin1.jsonl")
    open(jb, "wb").write(b'{"text": "Caf\xe9"}\n' + json.dumps({"text": good[0]}).encode() + b"\n")
    expect_error(tmp, {"tokenizer": tok, "inputs": [{"path": jb, "format": "jsonl"}], "out_dir": out, "strict": True},
                 f"{jb}:1", "UTF-8")

    # Empty corpus, unknown keys, bad values, missing files, usage.
    empty = os.path.join(tmp, "empty.txt")
    open(empty, "w").write("\n   \n\n")
    expect_error(tmp, {"tokenizer": tok, "inputs": [{"path": empty, "format": "text"}], "out_dir": out},
                 "no documents left")
    expect_error(tmp, {"tokenizer": tok, "inputs": [{"path": txt, "format": "text"}], "out_dir": out, "shuffle": 1},
                 "prep.json", "unknown key 'shuffle'")
    expect_error(tmp, {"tokenizer": tok, "inputs": [{"path": txt, "fromat": "text"}], "out_dir": out},
                 "unknown key 'inputs.0.fromat'")
    expect_error(tmp, {"tokenizer": tok, "inputs": [{"path": txt, "format": "csv"}], "out_dir": out},
                 "inputs.0.format", "csv")
    expect_error(tmp, {"tokenizer": tok, "inputs": [{"path": txt, "format": "text"}], "out_dir": out,
                       "val_fraction": "0.1"}, "val_fraction")
    expect_error(tmp, {"tokenizer": tok, "inputs": [{"path": os.path.join(tmp, "nope*.txt"), "format": "text"}],
                       "out_dir": out}, "nope*.txt")
    expect_error(tmp, {"tokenizer": tok, "inputs": [{"path": txt, "format": "text"}], "out_dir": out},
                 "unknown key 'dedupe'", extra=["--set", "dedupe=false"])
    # A chat template that is none of the known ones (Phi-3's is known since issue 13).
    odd = os.path.join(tmp, "odd-template")
    shutil.copytree(os.path.dirname(tok), odd)
    with open(os.path.join(odd, "tokenizer_config.json"), "w") as f:
        json.dump({"chat_template": "{% for m in messages %}<<{{ m['role'] }}>> {{ m['content'] }}"
                                    "{% endfor %}"}, f)
    expect_error(tmp, {"tokenizer": odd, "inputs": [{"path": arr, "format": "alpaca"}], "out_dir": out},
                 "chatml, llama2, llama3, alpaca, zephyr, gemma, qwen3, phi3")
    expect_error(tmp, {"tokenizer": tok, "inputs": [{"path": arr, "format": "alpaca"}], "out_dir": out},
                 "no chat_template")
    # --set overrides and comments in the config.
    cfgp = os.path.join(tmp, "commented.json")
    with open(cfgp, "w") as f:
        f.write('{\n  // a comment\n  "tokenizer": "%s", /* another */\n  "inputs": [{"path": "%s", "format": "jsonl"}],\n'
                '  "out_dir": "%s"\n}\n' % (tok, txt, out))
    p = R.run_medtune(["prep", cfgp, "--json", "--set", "inputs.0.format=text", "--set", "val_fraction=0"])
    s = json.loads(p.stdout)
    if s["documents_kept"] != 2 or s["val"]["documents"] != 0:
        R.fail(f"--set overrides not applied: {s}")
    bad_json = os.path.join(tmp, "badcfg.json")
    open(bad_json, "w").write('{\n  "tokenizer": "x",\n  "inputs": [\n}\n')
    p = R.run_medtune(["prep", bad_json], expect_rc=1)
    if "badcfg.json: line 4" not in p.stderr:
        R.fail(f"config syntax error should name the line: {p.stderr!r}")
    R.run_medtune(["prep"], expect_rc=2)
    R.run_medtune(["prep", "--bogus", cfgp], expect_rc=2)
    print("OK: malformed records counted/located, strict failures, config errors named")


PLANTED = {
    "email": ["john.doe@example.com", "a_b+tag@mail.hospital.org"],
    "url": ["https://www.example.org/path?q=1", "www.clinic-site.com", "http://10.0.0.1/x"],
    "phone": ["(555) 123-4567", "555-987-6543", "+44 20 7946 0958", "+1 415.555.0100"],
    "id": ["12345678", "123-45-6789", "9876543210"],
}
KEEP = ["2019-03-15", "12.5 mg", "p < 0.001", "BP 120/80", "ICD-10 I10", "123456", "3.14159265",
        "1,234,567 cells", "version 1.2.3", "10.1016/j.cell.2019.01.001"]


def phi(tmp, shared):
    tok = gpt2(tmp)
    path = os.path.join(tmp, "notes.txt")
    lines = []
    for kind, items in PLANTED.items():
        for i, item in enumerate(items):
            lines.append(f"Note {kind} {i}: contact {item} about the follow-up; {KEEP[(len(lines)) % len(KEEP)]}.")
    lines.append("Unrelated values: " + "; ".join(KEEP) + ".")
    open(path, "w").write("\n\n".join(lines) + "\n")
    out = os.path.join(tmp, "out")
    s = json.loads(R.prep(tmp, {"tokenizer": tok, "inputs": [{"path": path, "format": "text"}], "out_dir": out,
                                "scrub_phi": True, "val_fraction": 0}).stdout)
    for kind, items in PLANTED.items():
        if s["phi_replacements"][kind] != len(items):
            R.fail(f"{kind}: {s['phi_replacements'][kind]} replacements, {len(items)} planted ({s['phi_replacements']})")
    hf = Tokenizer.from_file(tok)
    _, words = R.read_split(out, "train")
    text = hf.decode([w & 0x3FFFFFFF for w in words])
    for kind, items in PLANTED.items():
        if text.count(f"[{kind.upper()}]") != len(items):
            R.fail(f"[{kind.upper()}] appears {text.count(f'[{kind.upper()}]')} times in the shards")
        for item in items:
            if item in text:
                R.fail(f"{item!r} survived scrubbing")
    for k in KEEP:
        if k not in text:
            R.fail(f"{k!r} was scrubbed but is not an identifier")
    s = json.loads(R.prep(tmp, {"tokenizer": tok, "inputs": [{"path": path, "format": "text"}], "out_dir": out,
                                "val_fraction": 0}).stdout)
    if any(s["phi_replacements"].values()):
        R.fail("replacements counted with scrub_phi off")
    print(f"OK: PHI scrub counts {s and {k: len(v) for k, v in PLANTED.items()}}, {len(KEEP)} look-alikes kept")


def main():
    case = sys.argv[1]
    shared = R.env("MEDTUNE_SHARED")
    tmp = tempfile.mkdtemp(prefix=f"medtune_prep_{case}_")
    {"determinism": determinism, "corrupt": corrupt, "malformed": malformed, "phi": phi}[case](tmp, shared)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
