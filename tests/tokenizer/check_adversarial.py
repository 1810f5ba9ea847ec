"""medtune tokenize == HF `tokenizers` on tests/data/adversarial.txt (every line, and the whole
file as one document), with and without special tokens, for every tokenizer; decode parity;
decode(encode(x)) == x for the byte-level ones. argv[1] == "invalid-utf8" instead checks raw
invalid UTF-8 input against HF applied to bytes.decode("utf-8", errors="replace").
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_ref  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

# Ill-formed sequences of every kind in Unicode Table 3-7 terms, inside ordinary text.
INVALID = [
    b"lone continuation \x80 and \xbf here",
    b"truncated 2-byte \xc3 then text",
    b"truncated 3-byte \xe2\x82 then text \xe2",
    b"truncated 4-byte \xf0\x9f\x98 emoji",
    b"overlong \xc0\xaf \xc1\xbf \xe0\x80\xaf \xf0\x80\x80\xaf",
    b"surrogates \xed\xa0\x80 \xed\xbf\xbf",
    b"beyond U+10FFFF \xf4\x90\x80\x80 \xf5\x80\x80\x80 \xff\xfe",
    b"\xff at start and at end \xfe",
    b"mixed \xe6\x97\xa5\xe6\x9c\xac \x9f\xe8\xaa\x9e <s> \xc3( <|endoftext|>\xa0",
    b"latin-1 text: caf\xe9 na\xefve r\xe9sum\xe9",
    b"\xc3\xa9\xc3" + b"a" * 40 + b"\xe2\x96",
]


def check(name, model, hf, texts, where, add_special, binary, raw=None):
    got = tokenizer_ref.medtune_encode_raw(binary, model, raw, add_special) if raw is not None else \
        tokenizer_ref.medtune_encode(binary, model, texts, add_special)
    want = [e.ids for e in hf.encode_batch(texts, add_special_tokens=add_special)]
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            tokenizer_ref.report_mismatch("%s (add_special=%s)" % (name, add_special), where(i), texts[i], g, w)
            return None
    return got


def main():
    shared, binary = tokenizer_ref.env_paths()
    mode = sys.argv[1] if len(sys.argv) > 1 else "text"
    src = os.environ.get("MEDTUNE_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
    raw_doc = open(os.path.join(src, "tests", "data", "adversarial.txt"), "rb").read()
    doc = raw_doc.decode("utf-8")
    raw_lines = raw_doc.split(b"\n")
    lines = [x.decode("utf-8") for x in raw_lines]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        toks = tokenizer_ref.fresh_tokenizer_set(tmp)
        toks.update(tokenizer_ref.tokenizer_set(shared, tmp))
        for name, (model, json_path, _, lossless) in sorted(toks.items()):
            hf = Tokenizer.from_file(json_path)
            if mode == "invalid-utf8":
                texts = [b.decode("utf-8", errors="replace") for b in INVALID]
                for sp in (True, False):
                    if check(name, model, hf, texts, lambda i: "invalid input %r" % INVALID[i], sp, binary,
                             raw=INVALID) is None:
                        failed += 1
                        break
                continue
            ok = True
            for sp in (True, False):
                got_lines = check(name, model, hf, lines, lambda i: "adversarial.txt line %d" % (i + 1), sp,
                                  binary, raw=raw_lines)
                got_doc = check(name, model, hf, [doc], lambda i: "adversarial.txt as one document", sp, binary)
                if got_lines is None or got_doc is None:
                    ok = False
                    break
            if not ok:
                failed += 1
                continue
            all_ids = got_lines + got_doc
            texts = lines + [doc]
            for skip_special in (False, True):
                dec = tokenizer_ref.medtune_decode(binary, model, all_ids, skip_special)
                ref = hf.decode_batch(all_ids, skip_special_tokens=skip_special)
                for i, (a, b) in enumerate(zip(dec, ref)):
                    if a != b:
                        print("FAIL: %s: decode(skip_special=%s) differs from HF on text %d\n  medtune: %r\n  HF:      %r"
                              % (name, skip_special, i, a[:300], b[:300]))
                        ok = False
                        break
            if lossless:
                back = tokenizer_ref.medtune_decode(binary, model, all_ids, False)
                for i, (a, b) in enumerate(zip(back, map(tokenizer_ref.normalized(hf), texts))):
                    if a != b:
                        print("FAIL: %s: decode(encode(x)) != x on text %d\n  x:    %r\n  back: %r" % (name, i, b[:300], a[:300]))
                        ok = False
                        break
            failed += not ok
            if ok:
                print("%s: %d lines + whole file identical to HF (with and without specials), decode identical%s"
                      % (name, len(lines), ", decode(encode(x)) == x" if lossless else ""))
    if mode == "invalid-utf8" and not failed:
        print("invalid UTF-8: %d inputs x %d tokenizers identical to HF on errors='replace' text" % (len(INVALID), len(toks)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
