#!/usr/bin/env python3
"""One parity test: twin debug state for a case, then the C side compares against it.

usage: check_parity.py CASE_NAME      (CASE_NAME = a file tests/twin/cases/CASE_NAME.json)

Environment (set by ctest): MEDTUNE_TEST_BIN (test binaries; work files go to
$MEDTUNE_TEST_BIN/parity/<case>/), MEDTUNE_SHARED, MEDTUNE_CACHE. The case's "model" is
"spec:NAME" (a random model from tests/twin/models/NAME.json, made here), "shared:REL"
($MEDTUNE_SHARED/REL) or "cache:FILE" ($MEDTUNE_CACHE/FILE); "pubmedqa_pmid" extracts that
PubMed abstract from $MEDTUNE_SHARED/data/pubmedqa into the work directory as the case's text.
Without $MEDTUNE_SHARED (a fresh clone) a "shared:" model is replaced by a random-weight model
of the shape the case's "fresh_model" gives (testlib.random_hf_model arguments), and the
abstract by configs/quickstart/clinical_notes.txt.
The twin's output is reused while the case, the model, the text and the twin's sources are
unchanged (for real models also across build directories, via $MEDTUNE_CACHE/twin/). Exit code: test_parity's, or 77 (skip) when a needed input is absent.
"""
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77
TWIN_SOURCES = ("twin.py", "llama.py", "model_io.py", "make_model.py")


def skip(msg):
    print(f"SKIP: {msg}")
    sys.exit(SKIP)


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()


def file_digest(path):
    """Size + mtime for big real models (hashing 100 MB per run is wasted time), content else."""
    st = os.stat(path)
    if st.st_size > (16 << 20):
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    with open(path, "rb") as fp:
        return hashlib.sha256(fp.read()).hexdigest()


def model_digest(path):
    if os.path.isdir(path):
        return digest(*(name + file_digest(os.path.join(path, name))
                        for name in sorted(os.listdir(path))
                        if os.path.isfile(os.path.join(path, name))))
    return file_digest(path)


def resolve_model(case, work, fresh=None):
    kind, _, ref = case["model"].partition(":")
    if kind == "spec":
        sys.path.insert(0, HERE)
        from make_model import write_model
        with open(os.path.join(HERE, "models", ref + ".json"), "rb") as fp:
            raw = fp.read()
        out = os.path.join(work, "model")
        stamp = digest(raw, file_digest(os.path.join(HERE, "make_model.py")))
        stamp_file = os.path.join(work, "model.stamp")
        if not (os.path.exists(stamp_file) and open(stamp_file).read() == stamp):
            write_model(json.loads(raw), out)
            with open(stamp_file, "w") as fp:
                fp.write(stamp)
        return out
    if kind == "shared":
        shared = os.environ.get("MEDTUNE_SHARED", "")
        path = os.path.join(shared, ref)
        if shared and os.path.exists(path):
            return path
        if not fresh:
            skip(f"{path} is absent (MEDTUNE_SHARED)")
        # A fresh clone: a random-weight model of the same shape, with a tokenizer trained on
        # the sample data (testlib.random_hf_model), stands in for the real one.
        print(f"note: {path} is absent: a random-weight stand-in {fresh}")
        sys.path.insert(0, os.path.join(HERE, ".."))
        from testlib import random_hf_model
        out = os.path.join(work, "fresh-model")
        stamp = digest(json.dumps(fresh, sort_keys=True),
                       *(file_digest(os.path.join(HERE, f)) for f in ("make_model.py", "../testlib.py")))
        stamp_file = os.path.join(work, "fresh-model.stamp")
        if not (os.path.exists(stamp_file) and open(stamp_file).read() == stamp):
            shutil.rmtree(out, ignore_errors=True)
            random_hf_model(out, **fresh)
            with open(stamp_file, "w") as fp:
                fp.write(stamp)
        return out
    if kind == "cache":
        path = os.path.join(os.environ.get("MEDTUNE_CACHE", ""), ref)
        if not os.path.exists(path):
            skip(f"{path} is absent (run tools/fetch_smollm2.sh)")
        return path
    fail(f"case model '{case['model']}' is not spec:, shared: or cache:")


def extract_abstract(pmid, work):
    """Writes the PubMedQA abstract (its context sections joined by spaces) to work/abstract.txt."""
    src = os.path.join(os.environ.get("MEDTUNE_SHARED", ""), "data", "pubmedqa", "ori_pqal.json")
    if not os.path.exists(src):
        # A fresh clone: the quickstart's clinical paragraphs are the medical text instead.
        notes = os.path.join(HERE, "..", "..", "configs", "quickstart", "clinical_notes.txt")
        print(f"note: {src} is absent: the case reads {notes}")
        return notes
    with open(src, encoding="utf-8") as fp:
        rec = json.load(fp).get(pmid)
    if rec is None:
        fail(f"{src}: no PMID {pmid}")
    path = os.path.join(work, "abstract.txt")
    with open(path, "w", encoding="utf-8") as fp:
        fp.write(" ".join(rec["CONTEXTS"]))
    return path


def shared_copy(case, stamp):
    """Real models have the same path in every build directory, so their (slow) twin output is
    also kept in $MEDTUNE_CACHE/twin/, keyed by the stamp, for the other build directories."""
    cache = os.environ.get("MEDTUNE_CACHE")
    if not cache or case["model"].startswith("spec:"):
        return None
    return os.path.join(cache, "twin", stamp[:32] + ".safetensors")


def copy_atomic(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = f"{dst}.{os.getpid()}.tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    name = argv[1]
    case_path = os.path.join(HERE, "cases", name + ".json")
    with open(case_path) as fp:
        case = json.load(fp)
    bin_dir = os.environ.get("MEDTUNE_TEST_BIN") or fail("MEDTUNE_TEST_BIN is not set")
    work = os.path.join(bin_dir, "parity", name)
    os.makedirs(work, exist_ok=True)

    model = resolve_model(case, work, case.pop("fresh_model", None))
    if "pubmedqa_pmid" in case:
        case["text_file"] = extract_abstract(case.pop("pubmedqa_pmid"), work)
    resolved = os.path.join(work, "case.json")
    with open(resolved, "w") as fp:
        json.dump(case, fp, indent=1, sort_keys=True)

    debug = os.path.join(work, "debug.safetensors")
    # The text enters by content: its path differs between build directories.
    stamp = digest(json.dumps({k: v for k, v in case.items() if k != "text_file"}, sort_keys=True),
                   model_digest(model),
                   file_digest(case["text_file"]) if case.get("text_file") else "",
                   *(file_digest(os.path.join(HERE, s)) for s in TWIN_SOURCES))
    stamp_file = os.path.join(work, "debug.stamp")
    if not (os.path.exists(debug) and os.path.exists(stamp_file)
            and open(stamp_file).read() == stamp):
        shared = shared_copy(case, stamp)
        lock = None
        if shared:
            # One build directory computes a real-model case; the others wait and copy it.
            os.makedirs(os.path.dirname(shared), exist_ok=True)
            lock = open(shared + ".lock", "w")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if shared and os.path.exists(shared):
            print(f"reusing {shared}")
            copy_atomic(shared, debug)
        else:
            python = os.environ.get("MEDTUNE_PYTHON") or sys.executable
            rc = subprocess.call([python, os.path.join(HERE, "twin.py"), "--model", model,
                                  "--case", resolved, "--out", debug])
            if rc != 0:
                fail(f"twin.py failed on case {name} (exit {rc})")
            if shared:
                copy_atomic(debug, shared)
        if lock:
            lock.close()
        with open(stamp_file, "w") as fp:
            fp.write(stamp)
    else:
        print(f"reusing {debug}")

    checker = os.path.join(bin_dir, "test_parity")
    if not os.path.exists(checker):
        skip(f"{checker} is not built yet (tests/test_parity.c, area core)")
    sys.stdout.flush()
    return subprocess.call([checker, model, debug])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
