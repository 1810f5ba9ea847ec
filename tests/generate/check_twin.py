"""`medtune generate` greedy output equals a greedy loop over the PyTorch twin (tests/twin), which
recomputes the whole sequence at every step (no cache), token for token.

usage: check_twin.py smollm2_chat | adapter

smollm2_chat        the real SmolLM2-135M-Instruct Q4_1 GGUF, --chat with a medical question:
                    the prompt is rendered by jinja2 from the GGUF's own chat_template
                    (add_generation_prompt) and tokenized by the twin's `tokenizers` build of
                    the GGUF vocabulary; prompt ids, generated ids and text must all match.
adapter             a random-weight GQA llama (and tinystories-656k when ../shared is there)
                    with a non-zero PEFT adapter (written here with the `safetensors` package,
                    PEFT names) via --adapter; the adapter must change the output, and the twin
                    applies it as PEFT does.
"""
import json
import os
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "twin"))
import llama as L  # noqa: E402
import model_io  # noqa: E402

sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import fail, skip, work_dir  # noqa: E402
from fresh_lib import fresh_model, shared_or_none  # noqa: E402

QUESTION = "What are the first-line treatments for community-acquired pneumonia in adults?"


def medtune(args):
    exe = os.environ.get("MEDTUNE_BIN", "medtune")
    p = subprocess.run([exe] + args, capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"medtune {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def twin_greedy(twin, prompt, max_new, stop_ids):
    """Greedy decode with a full recompute of the sequence at every step."""
    ids = list(prompt)
    out = []
    with torch.no_grad():
        for _ in range(max_new):
            t = torch.tensor([ids], dtype=torch.int32)
            pos = torch.arange(len(ids), dtype=torch.int32)[None]
            logits = twin.forward(t, pos, torch.zeros_like(t))[0, -1]
            nxt = int(torch.argmax(logits))
            out.append(nxt)
            if nxt in stop_ids:
                break
            ids.append(nxt)
    return out


def compare(name, got, want):
    if got != want:
        k = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        fail(f"{name}: medtune and the twin differ at new token {k}: medtune {got[k:k + 8]}, "
             f"twin {want[k:k + 8]} ({len(got)} vs {len(want)} tokens)")


def smollm2_chat():
    cache = os.environ.get("MEDTUNE_CACHE", os.path.join(HERE, "..", "..", ".cache"))
    path = os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        skip(f"{path} is absent (tools/fetch_smollm2.sh downloads it)")
    from gguf import GGUFReader
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    r = GGUFReader(path)
    field = lambda k: model_io._field(r, k)  # noqa: E731
    tokens = field("tokenizer.ggml.tokens")
    bos, eos = field("tokenizer.ggml.bos_token_id"), field("tokenizer.ggml.eos_token_id")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(field("tokenizer.chat_template")).render(
        messages=[{"role": "user", "content": QUESTION}], add_generation_prompt=True,
        bos_token=tokens[bos], eos_token=tokens[eos])
    tok, _, _ = model_io.gguf_tokenizer(path)
    prompt = tok.encode(text, add_special_tokens=False).ids
    stop = {eos, tokens.index("<|im_end|>")}

    max_new = 32
    res = medtune(["generate", path, "--chat", QUESTION, "--max-new", str(max_new), "--json"])
    if res["prompt_ids"] != prompt:
        fail(f"prompt ids differ from jinja2 + tokenizers:\n{res['prompt_ids']}\n{prompt}\n{text!r}")
    cfg, w = model_io.load_model(path)
    twin = L.Twin(cfg, w, {}, 0.0)
    want = twin_greedy(twin, prompt, max_new, stop)
    compare("smollm2_chat", res["ids"], want)
    shown = [i for i in want if i not in stop]
    if res["text"] != tok.decode(shown):
        fail(f"text differs from tokenizers decode:\n{res['text']!r}\n{tok.decode(shown)!r}")
    if res["positions_computed"] != len(prompt) + len(want) - 1:
        fail(f"{res['positions_computed']} positions computed for {len(prompt)} prompt + "
             f"{len(want)} new tokens: the cache is not used")
    print(f"smollm2_chat: {len(prompt)} prompt ids and {len(want)} greedy ids equal the twin's; "
          f"{res['tokens_per_s']:.1f} tokens/s\n  {res['text']!r}")


def write_adapter(out_dir, cfg, r, alpha, seed):
    """A PEFT adapter directory with non-zero A and B (B ~ N(0, 0.3): a visible effect)."""
    from safetensors.torch import save_file
    os.makedirs(out_dir, exist_ok=True)
    lora = L.lora_init(cfg, r, L.TARGETS, seed, b_std=0.3)
    save_file({k: v.detach().contiguous() for k, v in lora.items()},
              os.path.join(out_dir, "adapter_model.safetensors"), metadata={"format": "pt"})
    conf = {"base_model_name_or_path": "base", "bias": "none",
            "fan_in_fan_out": False, "lora_alpha": alpha, "lora_dropout": 0.0, "peft_type": "LORA",
            "r": r, "target_modules": list(L.TARGETS), "task_type": "CAUSAL_LM",
            "use_rslora": False}
    with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
        json.dump(conf, f, indent=2, sort_keys=True)
    return {k: v.detach() for k, v in lora.items()}


def twin_adapter(name, path, prompt_text, work):
    cfg, w = model_io.load_model(path)
    r, alpha = 4, 8
    lora = write_adapter(os.path.join(work, "adapter"), cfg, r, alpha, seed=3)
    tok, add_bos, bos = model_io.hf_tokenizer(path, cfg)
    prompt = ([bos] if add_bos else []) + tok.encode(prompt_text, add_special_tokens=False).ids
    max_new = 60
    args = ["generate", path, "--prompt", prompt_text, "--max-new", str(max_new), "--json"]
    base = medtune(args)
    res = medtune(args + ["--adapter", os.path.join(work, "adapter")])
    if res["prompt_ids"] != prompt:
        fail(f"prompt ids {res['prompt_ids']} != tokenizers {prompt}")
    twin = L.Twin(cfg, w, lora, alpha / r)
    with open(os.path.join(path, "config.json")) as f:
        eos = json.load(f)["eos_token_id"]
    stop = set(eos) if isinstance(eos, list) else {eos}
    want = twin_greedy(twin, prompt, max_new, stop)
    compare(f"{name}_adapter", res["ids"], want)
    if res["ids"] == base["ids"]:
        fail("the adapter did not change the greedy output: it is not applied")
    base_twin = twin_greedy(L.Twin(cfg, w, {}, 0.0), prompt, max_new, stop)
    compare(f"{name}_base", base["ids"], base_twin)
    print(f"{name}_adapter: {len(want)} greedy ids with the adapter (and {len(base_twin)} "
          f"without) equal the twin's\n  adapter: {res['text']!r}\n  base:    {base['text']!r}")


def adapter():
    work = work_dir("generate_tests", "twin_adapter")
    model = fresh_model(os.path.join(work, "random_llama"))
    twin_adapter("random_llama", model, "The patient was started on metformin because", work)
    shared = shared_or_none()
    if shared:
        twin_adapter("tinystories", os.path.join(shared, "models", "tinystories-656k"),
                     "Once upon a time, there was a doctor who", os.path.join(work, "tinystories"))


if __name__ == "__main__":
    torch.set_num_threads(2)
    cases = {"smollm2_chat": smollm2_chat, "adapter": adapter}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        fail(f"usage: check_twin.py {'|'.join(cases)}")
    cases[sys.argv[1]]()
