"""template "auto" on the real SmolLM2-135M-Instruct GGUF: the chat_template in the GGUF
metadata (chatml with a default system prompt) is rendered by jinja2 as transformers does;
medtune's shard tokens, decoded with the GGUF's own byte-level vocabulary (read with the gguf
package), must spell exactly that rendering, and the trained tokens exactly the answers with
their <|im_end|>."""

import json
import os
import tempfile

import gguf
from jinja2.sandbox import ImmutableSandboxedEnvironment

import prep_ref as R
from prep_lib import conversations


def byte_decoder():
    """Inverse of GPT-2's bytes_to_unicode alphabet."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def field(reader, key):
    f = reader.fields[key]
    return f.parts[f.data[0]]


def main():
    model = os.path.join(R.env("MEDTUNE_CACHE"), "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(model):
        R.skip(f"{model} is absent (tools/fetch_smollm2.sh)")
    reader = gguf.GGUFReader(model)
    template = bytes(field(reader, "tokenizer.chat_template")).decode()
    tf = reader.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(tf.parts[i]).decode() for i in tf.data]
    types = reader.fields["tokenizer.ggml.token_type"]
    ttype = [int(types.parts[i][0]) for i in types.data]
    eos = tokens[int(field(reader, "tokenizer.ggml.eos_token_id")[0])]
    bd = byte_decoder()

    def decode(ids):
        out = b""
        for i in ids:
            t = tokens[i]
            out += t.encode() if ttype[i] == 3 else bytes(bd[c] for c in t)  # 3: control token
        return out.decode("utf-8")

    tmp = tempfile.mkdtemp(prefix="medtune_prep_gguf_")
    alpaca, sharegpt, messages, convs = conversations()
    with open(os.path.join(tmp, "m.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in messages)
    with open(os.path.join(tmp, "s.json"), "w") as f:
        json.dump(sharegpt, f)
    out = os.path.join(tmp, "shards")
    s = json.loads(R.prep(tmp, {"tokenizer": model, "template": "auto", "val_fraction": 0, "out_dir": out,
                                "inputs": [{"path": os.path.join(tmp, "s.json"), "format": "sharegpt"},
                                           {"path": os.path.join(tmp, "m.jsonl"), "format": "messages"}]}).stdout)
    if s.get("template") != "chatml":
        R.fail(f"auto chose {s.get('template')} for SmolLM2")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    tpl = env.from_string(template)
    _, words = R.read_split(out, "train")
    docs = R.split_docs(words)
    convs = convs[3:]  # the sharegpt and messages conversations, in input order
    if len(docs) != len(convs):
        R.fail(f"{len(docs)} documents, {len(convs)} conversations")
    for i, (conv, (ids, trained)) in enumerate(zip(convs, docs)):
        msgs = [{"role": r, "content": c} for r, c, _ in conv]
        want = tpl.render(messages=msgs, eos_token=eos, add_generation_prompt=False)
        got = decode(ids)
        if got != want:
            R.fail(f"conversation {i}: medtune renders\n{got!r}\nthe model's template\n{want!r}")
        runs, cur = [], []
        for t, f in zip(ids, trained):
            if f:
                cur.append(t)
            elif cur:
                runs.append(decode(cur))
                cur = []
        if cur:
            runs.append(decode(cur))
        answers = [c + "<|im_end|>" for r, c, _ in conv if r == "assistant"]
        if runs != answers:
            R.fail(f"conversation {i}: trained spans {runs!r}, expected {answers!r}")
    print(f"OK: SmolLM2 auto template: {len(convs)} conversations render as the GGUF chat_template, answers trained")


if __name__ == "__main__":
    main()
