"""medtune tokenize == HF `tokenizers` on every file of $MEDTUNE_SHARED/data, line by line and
as whole documents, for one tokenizer (argv[1]); then decode parity and decode(encode(x)) == x.
Always first: a tokenizer of the same family trained on the checkout's sample data
(tokenizer_ref.FAMILY), on the sample files (testlib.sample_records); the real tokenizer on
$MEDTUNE_SHARED/data when present.

Each file contributes its first MEDTUNE_TOK_CAP bytes (default 32 KiB; 8 KiB per file in
folders of many small files), cut at a line end; MEDTUNE_TOK_CAP=0 takes whole files.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_ref  # noqa: E402
from testlib import sample_records  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def data_records(shared):
    cap = int(os.environ.get("MEDTUNE_TOK_CAP", str(32 * 1024)))
    root = os.path.join(shared, "data")
    lines, docs = [], []
    nfiles = 0
    for d, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(d, name)
            raw = open(path, "rb").read()
            if b"\0" in raw[:4096]:
                continue  # not a text file
            limit = cap if len(files) < 20 else cap // 4
            if cap and len(raw) > limit:
                cut = raw.rfind(b"\n", 0, limit)
                raw = raw[:cut + 1 if cut > 0 else limit]
            text = raw.decode("utf-8", errors="replace")
            rel = os.path.relpath(path, root)
            nfiles += 1
            docs.append((rel, 0, text))
            for i, line in enumerate(text.split("\n")):
                if line:
                    lines.append((rel, i + 1, line))
    return nfiles, lines, docs


def check(name, binary, model, json_path, lossless, lines, docs, nfiles):
    """0 when medtune equals HF on every record (encode, decode, round trip), else 1."""
    hf = Tokenizer.from_file(json_path)
    records = lines + docs
    texts = [r[2] for r in records]
    t0 = time.time()
    got = tokenizer_ref.medtune_encode(binary, model, texts)
    t1 = time.time()
    want = [e.ids for e in hf.encode_batch(texts, add_special_tokens=True)]
    t2 = time.time()
    bad = [i for i in range(len(texts)) if got[i] != want[i]]
    nbytes = sum(len(t.encode()) for t in texts)
    print("%s: %d files, %d lines + %d documents, %.1f MB, %d tokens; medtune %.1fs (with process I/O), "
          "HF %.1fs (encode_batch)" % (name, nfiles, len(lines), len(docs), nbytes / 1e6,
                                     sum(map(len, want)), t1 - t0, t2 - t1))
    if bad:
        f, ln, text = records[bad[0]]
        tokenizer_ref.report_mismatch("%s: %d of %d texts differ" % (name, len(bad), len(texts)),
                                      "first at %s line %s" % (f, ln if ln else "(whole document)"),
                                      text, got[bad[0]], want[bad[0]])
        return 1

    # Decoding: same text as HF with and without special tokens, on every record.
    fails = 0
    for skip_special in (False, True):
        dec = tokenizer_ref.medtune_decode(binary, model, got, skip_special)
        ref = hf.decode_batch(got, skip_special_tokens=skip_special)
        for i in range(len(texts)):
            if dec[i] != ref[i]:
                f, ln, text = records[i]
                print("FAIL: %s: decode(skip_special=%s) differs from HF at %s line %s\n  ids: %s\n"
                      "  medtune: %r\n  HF:      %r" % (name, skip_special, f, ln, got[i][:40], dec[i][:200], ref[i][:200]))
                fails += 1
                break
    # Round trip without added specials.
    plain = tokenizer_ref.medtune_encode(binary, model, texts, add_special=False)
    back = tokenizer_ref.medtune_decode(binary, model, plain, False)
    norm = tokenizer_ref.normalized(hf)
    lossless_n = sum(1 for a, b in zip(back, texts) if a == norm(b))
    ref_back = hf.decode_batch(plain, skip_special_tokens=False)
    if back != ref_back:
        i = next(i for i in range(len(texts)) if back[i] != ref_back[i])
        print("FAIL: %s: decode(encode(x)) differs from HF's at %s line %s" % (name, records[i][0], records[i][1]))
        fails += 1
    if lossless and lossless_n != len(texts):
        i = next(i for i in range(len(texts)) if back[i] != norm(texts[i]))
        print("FAIL: %s: decode(encode(x)) != x for a lossless tokenizer at %s line %s:\n  x:    %r\n  back: %r"
              % (name, records[i][0], records[i][1], texts[i][:200], back[i][:200]))
        fails += 1
    if fails:
        return 1
    print("%s: ids identical on all %d texts; decode identical to HF; decode(encode(x)) == x on %d/%d%s"
          % (name, len(texts), lossless_n, len(texts), " (required: lossless tokenizer)" if lossless else
             " (same as HF's own round trip)"))
    return 0


def main():
    shared, binary = tokenizer_ref.env_paths()
    name = sys.argv[1]
    if name not in tokenizer_ref.FAMILY:
        print("FAIL: unknown tokenizer %s (tokenizer_ref.FAMILY)" % name)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        flavour = tokenizer_ref.FAMILY[name]
        fresh = tokenizer_ref.fresh_tokenizer_set(tmp, flavour)["trained-" + flavour]
        lines, docs = sample_records()
        if check("%s family (trained-%s)" % (name, flavour), binary, fresh[0], fresh[1], fresh[3],
                 lines, docs, len(docs)):
            return 1
        if shared is None:
            return 0
        toks = tokenizer_ref.tokenizer_set(shared, tmp, name)
        if name not in toks:
            print("note: tokenizer %s is not available in %s" % (name, shared))
            return 0
        model, json_path, _, lossless = toks[name]
        nfiles, lines, docs = data_records(shared)
        if not nfiles:
            print("note: no data files in %s/data" % shared)
            return 0
        return check(name, binary, model, json_path, lossless, lines, docs, nfiles)


if __name__ == "__main__":
    sys.exit(main())
