"""`medtune tokenize` as a command: exit codes and one-line errors on bad input (never a
crash), --help, and that its default output equals --json's "ids" and HF on a few lines."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_ref  # noqa: E402


def run(binary, args, stdin=b""):
    r = subprocess.run([binary, "tokenize"] + args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def expect(cond, what):
    if not cond:
        print("FAIL: " + what)
        sys.exit(1)


def main():
    shared, binary = tokenizer_ref.env_paths()
    with tempfile.TemporaryDirectory() as tmp:
        # A byte-level BPE trained on the sample data always; the real GPT-2 when present.
        models = [tokenizer_ref.fresh_tokenizer_set(tmp, "gpt2")["trained-gpt2"][0]]
        if shared:
            models.append(os.path.join(shared, "tokenizers", "gpt2"))
        for gpt2 in models:
            rc, out, _ = run(binary, ["--help"])
            expect(rc == 0 and "usage: medtune tokenize" in out, "--help")
            rc, _, err = run(binary, [])
            expect(rc == 2 and "MODEL is required" in err, "missing MODEL is a usage error (2): %d %s" % (rc, err))
            rc, _, err = run(binary, [gpt2, "--bogus"])
            expect(rc == 2 and "--bogus" in err, "unknown option is a usage error")
            rc, _, err = run(binary, ["/nonexistent/model"])
            expect(rc == 1 and err.startswith("medtune: error: /nonexistent/model:") and err.count("\n") == 1,
                   "missing model: one error line naming it, exit 1: %r" % err)
            for bad in (b"[1, 2\n", b"{\"a\": 1}\n", b"[1.5]\n", b"[99999999]\n", b"[\"x\"]\n",
                        b"[1e30]\n", b"[-1e300]\n"):
                rc, _, err = run(binary, [gpt2, "--decode"], bad)
                expect(rc == 1 and err.startswith("medtune: error: ") and err.count("\n") == 1,
                       "bad --decode input %r: exit 1 with one error line, got %d %r" % (bad, rc, err))
            rc, _, err = run(binary, [gpt2, "--json-input"], b"not json\n")
            expect(rc == 1 and "line 1" in err, "bad --json-input line is named: %r" % err)

            from tokenizers import Tokenizer
            hf = Tokenizer.from_file(os.path.join(gpt2, "tokenizer.json"))
            text = ["Hello world", "<|endoftext|> and more", "", "tabs\tand  spaces"]
            data = "".join(t + "\n" for t in text).encode()
            rc, out, _ = run(binary, [gpt2], data)
            plain = [json.loads(x) for x in out.splitlines()]
            rc2, out2, _ = run(binary, [gpt2, "--json"], data)
            objs = [json.loads(x) for x in out2.splitlines()]
            expect(rc == 0 and rc2 == 0 and plain == [o["ids"] for o in objs], "default output == --json ids")
            expect(plain == [e.ids for e in hf.encode_batch(text)], "CLI ids == HF")
            expect([o["tokens"] for o in objs] == [e.tokens for e in hf.encode_batch(text)], "CLI tokens == HF tokens")
            rc, out, _ = run(binary, [gpt2, "--count"], data)
            c = json.loads(out)
            expect(rc == 0 and c["lines"] == 4 and c["tokens"] == sum(map(len, plain)), "--count summary: %r" % c)
            print("%s: ok" % gpt2)
    print("tokenize CLI: exit codes, errors, --json, --count ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
