"""The tokenizer files `medtune merge` writes into the HF directory of a GGUF base (the real
SmolLM2-135M-Instruct Q4_1): HF `tokenizers` loading the written tokenizer.json gives medtune's
ids for the GGUF on varied text (medical text, unicode, whitespace runs, digits, special
tokens); transformers' AutoTokenizer (in .cache/venv-peft: transformers 4.40, tokenizers 0.19)
loads the directory, gives the same ids, and its chat template renders the same text and ids as
medtune's template rendering (prep with template auto, generate --chat); `medtune eval` works on
the merged directory with shards prepped from the GGUF (same tokenizer fingerprint) and gives
the loss of base + adapter. `medtune export --format peft` of an adapter of the GGUF writes the
same tokenizer files beside the adapter: AutoTokenizer loads that directory to the same ids."""
import glob
import json
import os
import subprocess
import sys

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from export_lib import env, fail, random_adapter, run, skip, smollm2, work_dir  # noqa: E402

TEXTS = [
    "Metformin lowers HbA1c by ~1.5% (95% CI 1.2-1.8) in type 2 diabetes.",
    "BP 142/91 mmHg, HR 88 bpm, SpO\u2082 97% on room air; T 38.4 \u00b0C.",
    "Patient: \u00abJ'ai mal \u00e0 la t\u00eate\u00bb \u2014 c\u00e9phal\u00e9e, \u75c7\u72b6, \u0433\u043e\u043b\u043e\u0432\u043d\u0430\u044f \u0431\u043e\u043b\u044c \U0001f9e0",
    "   leading spaces,\ttabs\t\tand   runs of    spaces   ",
    "line one\n\nline three\r\n  indented\n\n\n",
    "<|im_start|>user\nIs 5 mg of warfarin safe?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after a special token<|im_end|><|im_end|>",
    "12345678901234567890 0.000123 1e-9 3,000,000",
    "",
    "\u00a0non-breaking\u2009thin\u3000ideographic spaces",
]

CONVERSATIONS = [
    [{"role": "user", "content": "What does an HbA1c of 8% mean?"},
     {"role": "assistant", "content": "Average glucose over about three months near 10 mmol/L."}],
    [{"role": "system", "content": "You are a careful clinical assistant."},
     {"role": "user", "content": "Name a loop diuretic."},
     {"role": "assistant", "content": "Furosemide."},
     {"role": "user", "content": "And a thiazide?"},
     {"role": "assistant", "content": "Hydrochlorothiazide."}],
]

# Runs in .cache/venv-peft: AutoTokenizer on the merged directory.
TRANSFORMERS_SIDE = r"""
import json, sys
from transformers import AutoTokenizer
d, texts, convs, question = json.load(sys.stdin)
t = AutoTokenizer.from_pretrained(d)
print(json.dumps({
    "class": type(t).__name__,
    "special": [t.bos_token, t.eos_token, t.pad_token, t.unk_token],
    "ids": [t(x).input_ids for x in texts],
    "rendered": [t.apply_chat_template(c, tokenize=False) for c in convs],
    "prompt_ids": t.apply_chat_template([{"role": "user", "content": question}],
                                        add_generation_prompt=True),
}))
"""


def transformers_side(merged, convs, question):
    cache = env("MEDTUNE_CACHE", os.path.join(HERE, "../../.cache"))
    py = os.path.join(cache, "venv-peft", "bin", "python")
    if not os.path.exists(py):
        skip(f"{py} is absent: tools/bootstrap.sh installs transformers there")
    p = subprocess.run([py, "-c", TRANSFORMERS_SIDE], input=json.dumps([merged, TEXTS, convs, question]),
                       capture_output=True, text=True)
    if p.returncode:
        fail(f"transformers could not use {merged}:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout)


def medtune_ids(model, texts):
    p = subprocess.run([env("MEDTUNE_BIN", "medtune"), "tokenize", model, "--json-input"],
        input="".join(json.dumps(t) + "\n" for t in texts), capture_output=True, text=True)
    if p.returncode:
        fail(f"medtune tokenize {model}: {p.stderr}")
    return [json.loads(line) for line in p.stdout.splitlines()]


def rendered_docs(shards, tok):
    """The documents of a shard directory's splits, decoded by HF tokenizers: what prep
    rendered, token for token (docs/formats.md)."""
    sys.path.insert(0, os.path.join(HERE, "..", "prep"))
    from prep_ref import read_split, split_docs
    docs = []
    for split in ("train", "val"):
        _, words = read_split(shards, split)
        docs += [tok.decode(ids, skip_special_tokens=False) for ids, _ in split_docs(words)]
    return docs, words


def main():
    gguf = smollm2()
    if not gguf:
        skip("SmolLM2-135M-Instruct.Q4_1.gguf is absent (tools/bootstrap.sh fetches it)")
    work = work_dir("hf_tokenizer")
    adapter = random_adapter(work, gguf, "adapter", r=4, alpha=8, targets="all")
    merged = os.path.join(work, "merged")
    run(["merge", gguf, adapter, merged])
    names = sorted(os.listdir(merged))
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if f not in names:
            fail(f"{merged} has no {f}: {names}")
    if glob.glob(os.path.join(merged, "*.tmp*")) or glob.glob(merged + ".partial"):
        fail(f"temporary files left beside the merged directory: {names}")

    want = medtune_ids(gguf, TEXTS)
    hf = Tokenizer.from_file(os.path.join(merged, "tokenizer.json"))
    for text, ids in zip(TEXTS, want):
        got = hf.encode(text).ids
        if got != ids:
            fail(f"HF tokenizers on the written tokenizer.json: {text!r}: {got}, medtune on the "
                 f"GGUF {ids}")
    if medtune_ids(merged, TEXTS) != want:
        fail("medtune on the merged directory gives other ids than on the GGUF")
    print(f"tokenizer.json: HF tokenizers ids = medtune's GGUF ids on {len(TEXTS)} texts")

    # Medtune's renderings: prep (template auto, read from the written tokenizer_config.json)
    # and the generation prompt of generate --chat.
    data = os.path.join(work, "chat.jsonl")
    with open(data, "w") as f:
        for c in CONVERSATIONS:
            f.write(json.dumps({"messages": c}) + "\n")
    shards = os.path.join(work, "chat_shards")
    cfg = os.path.join(work, "prep_chat.json")
    with open(cfg, "w") as f:
        json.dump({"tokenizer": merged, "inputs": [{"path": data, "format": "messages"}],
                   "template": "auto", "val_fraction": 0.0, "dedup": False, "out_dir": shards}, f)
    run(["prep", cfg])
    docs, _ = rendered_docs(shards, hf)
    question = "How should levothyroxine be taken?"
    gen = json.loads(run(["generate", merged, "--chat", question, "--max-new", "1",
                          "--json"]).stdout)

    tf = transformers_side(merged, CONVERSATIONS, question)
    if tf["class"] != "PreTrainedTokenizerFast" or tf["special"] != [
            "<|im_start|>", "<|im_end|>", "<|im_end|>", "<|endoftext|>"]:
        fail(f"AutoTokenizer: {tf['class']} with bos/eos/pad/unk {tf['special']}")
    for text, ids, got in zip(TEXTS, want, tf["ids"]):
        if got != ids:
            fail(f"AutoTokenizer: {text!r}: {got}, medtune {ids}")
    if sorted(docs) != sorted(tf["rendered"]):
        fail(f"chat template: medtune prep rendered {docs}\ntransformers {tf['rendered']}")
    if gen["prompt_ids"] != tf["prompt_ids"]:
        fail(f"generation prompt: medtune {gen['prompt_ids']}, transformers {tf['prompt_ids']}")
    print(f"AutoTokenizer loads {merged}: same ids on {len(TEXTS)} texts, same chat rendering "
          f"of {len(docs)} conversations and generation prompt ({len(gen['prompt_ids'])} ids)")

    text_shards = os.path.join(work, "text_shards")
    with open(os.path.join(work, "notes.txt"), "w") as f:
        f.write("\n\n".join(TEXTS[:4] * 6))
    cfg = os.path.join(work, "prep_text.json")
    with open(cfg, "w") as f:
        json.dump({"tokenizer": gguf, "inputs": [{"path": os.path.join(work, "notes.txt"),
                                                  "format": "text"}],
                   "val_fraction": 0.5, "dedup": False, "out_dir": text_shards}, f)
    run(["prep", cfg])
    cmd = ["--shards", text_shards, "--seq-len", "32", "--max-windows", "4", "--json"]
    m = json.loads(run(["eval", merged] + cmd).stdout)
    b = json.loads(run(["eval", gguf, "--adapter", adapter] + cmd).stdout)
    if m["tokens"] != b["tokens"] or abs(m["loss"] - b["loss"]) > 1e-4:
        fail(f"eval on the merged directory: {m}; base + adapter: {b}")
    print(f"medtune eval on the merged directory: loss {m['loss']:.6f} (base + adapter "
          f"{b['loss']:.6f}) over {m['tokens']} targets")

    exported = os.path.join(work, "exported")
    run(["export", adapter, exported, "--format", "peft", "--model", gguf])
    tf = transformers_side(exported, CONVERSATIONS, question)
    if tf["ids"] != want or tf["prompt_ids"] != gen["prompt_ids"]:
        fail(f"AutoTokenizer on the exported PEFT directory: ids {tf['ids']}, medtune {want}")
    print(f"AutoTokenizer loads the exported PEFT directory {exported}: same ids")
    print("OK")


if __name__ == "__main__":
    main()
