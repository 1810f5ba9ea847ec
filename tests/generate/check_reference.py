"""Greedy decoding through the KV-cache decoder (`test_generate reference`) against
REFERENCE_greedy.json files: one written here for a random-weight GQA llama (head_dim !=
hidden/heads, odd sizes) from the PyTorch twin, full recompute at every step, with the text
decoded by HF `tokenizers`; and the stdlib-forward references of ../shared's stories260K and
tinystories-656k when that folder is there."""
import json
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import env, fail, work_dir  # noqa: E402
from fresh_lib import SPECIALS, fresh_model, shared_or_none  # noqa: E402
import llama as L  # noqa: E402
import model_io  # noqa: E402

MAX_NEW = 48


def write_reference(model):
    """REFERENCE_greedy.json in the format of ../shared's: greedy ids from [bos] (stopped
    before the first special token, which would end generation), their text, and the full
    logits at positions 0..2."""
    cfg, w = model_io.load_model(model)
    tok, _, bos = model_io.hf_tokenizer(model, cfg)
    twin = L.Twin(cfg, w, {}, 0.0)
    ids, logits_at = [bos], {}
    with torch.no_grad():
        while len(ids) <= MAX_NEW:
            t = torch.tensor([ids], dtype=torch.int64)
            logits = twin.forward(t, torch.arange(len(ids))[None], torch.zeros_like(t))[0, -1]
            if len(ids) - 1 <= 2:
                logits_at[len(ids) - 1] = [float(x) for x in logits]
            nxt = int(torch.argmax(logits))
            if nxt < len(SPECIALS):
                break
            ids.append(nxt)
    greedy = ids[1:]
    if len(greedy) < 3:
        fail(f"the random model stops after {len(greedy)} tokens: too short a reference")
    ref = {"description": "greedy decode from [bos], PyTorch twin (tests/twin), full recompute "
                          "per step; text by HF tokenizers",
           "input_ids": [bos], "greedy_ids": greedy, "greedy_text": tok.decode(greedy)}
    for pos, v in logits_at.items():
        ref[f"logits_pos{pos}"] = v
    with open(os.path.join(model, "REFERENCE_greedy.json"), "w") as f:
        json.dump(ref, f)
    print(f"twin reference: {len(greedy)} greedy ids from [bos]: {ref['greedy_text']!r}")


def main():
    torch.set_num_threads(2)
    work = work_dir("generate_tests", "reference")
    model = fresh_model(os.path.join(work, "random_llama"))
    write_reference(model)
    dirs = [model]
    shared = shared_or_none()
    if shared:
        dirs += [os.path.join(shared, "models", m) for m in ("stories260K", "tinystories-656k")]
    exe = os.path.join(env("MEDTUNE_TEST_BIN", "."), "test_generate")
    p = subprocess.run([exe, "reference"] + dirs, capture_output=True, text=True)
    print(p.stdout + p.stderr)
    if p.returncode != 0:
        fail(f"test_generate reference exited {p.returncode}")
    print("PASS")


if __name__ == "__main__":
    main()
