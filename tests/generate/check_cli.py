"""`medtune generate` from the command line: --help, streaming, seeded sampling, stopping at
the end-of-turn token, and the refusals (one line, exit 1; usage errors exit 2).

usage: check_cli.py help | sampling | stop | refusals

sampling and refusals run on random-weight llamas written here, and again on tinystories-656k
(and stories260K) when ../shared is there.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "twin"))

sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import fail, skip, work_dir  # noqa: E402
from fresh_lib import fresh_model, shared_or_none  # noqa: E402


def run(args):
    exe = os.environ.get("MEDTUNE_BIN", "medtune")
    return subprocess.run([exe, "generate"] + args, capture_output=True)


def ok(args):
    p = run(args)
    if p.returncode != 0:
        fail(f"generate {' '.join(args)} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    return p


def ok_json(args):
    return json.loads(ok(args + ["--json"]).stdout)


def smollm2():
    cache = os.environ.get("MEDTUNE_CACHE", os.path.join(HERE, "..", "..", ".cache"))
    path = os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        skip(f"{path} is absent (tools/fetch_smollm2.sh downloads it)")
    return path


def check_help():
    p = ok(["--help"])
    text = p.stdout.decode()
    for opt in ("--adapter", "--prompt", "--chat", "--system", "--template", "--max-new",
                "--temperature", "--top-p", "--seed", "--threads", "--json", "--stats"):
        line = next((i for i, l in enumerate(text.splitlines()) if l.strip().startswith(opt)), None)
        if line is None:
            fail(f"--help does not list {opt}")
        block = " ".join(text.splitlines()[line:line + 3])
        if "default" not in block and opt not in ("--prompt", "--chat"):
            fail(f"--help gives no default for {opt}")
    print("help: every option listed with its default")


def sampling(model):
    base = ["--prompt", "Once upon a time", "--max-new", "48"]
    greedy = ok_json([model] + base)
    # Streaming prints exactly the JSON text (plus a final newline).
    streamed = ok([model] + base).stdout.decode()
    if streamed != greedy["text"] + ("" if greedy["text"].endswith("\n") else "\n"):
        fail(f"streamed output differs from the --json text:\n{streamed!r}\n{greedy['text']!r}")
    hot = base + ["--temperature", "1.0"]
    a = ok_json([model] + hot + ["--seed", "1"])
    b = ok_json([model] + hot + ["--seed", "1"])
    c = ok_json([model] + hot + ["--seed", "2"])
    if a["ids"] != b["ids"]:
        fail("the same seed gave different texts")
    if a["ids"] == c["ids"]:
        fail("seeds 1 and 2 gave the same 48 sampled tokens")
    if a["ids"] == greedy["ids"]:
        fail("temperature 1 sampling gave exactly the greedy text")
    nucleus = ok_json([model] + base + ["--temperature", "0.8", "--top-p", "1e-9", "--seed", "5"])
    if nucleus["ids"] != greedy["ids"]:
        fail("--top-p 1e-9 differs from greedy")
    print(f"sampling: seed 1 twice equal, seed 2 differs, top-p 1e-9 == greedy\n"
          f"  seed 1: {a['text'][:80]!r}\n  seed 2: {c['text'][:80]!r}")


def check_stop():
    model = smollm2()
    from gguf import GGUFReader
    from model_io import _field
    im_end = _field(GGUFReader(model), "tokenizer.ggml.tokens").index("<|im_end|>")
    res = ok_json([model, "--chat", "Is aspirin an NSAID? Answer with one word.", "--max-new", "64"])
    if res["stop"] != "eos":
        fail(f"the chat answer did not end at the end-of-turn token: stop {res['stop']}, "
             f"{res['new_tokens']} tokens: {res['text']!r}")
    if res["ids"][-1] != im_end or im_end in res["ids"][:-1]:
        fail(f"the last id is {res['ids'][-1]}, expected <|im_end|> = {im_end} once")
    if "<|im_end|>" in res["text"] or "<|im_start|>" in res["text"]:
        fail(f"special tokens in the text: {res['text']!r}")
    print(f"stop: ended at <|im_end|> after {res['new_tokens']} tokens: {res['text']!r}")


def expect_error(args, code, what):
    p = run(args)
    err = p.stderr.decode(errors="replace")
    if p.returncode != code:
        fail(f"{what}: exit {p.returncode}, expected {code}\nstderr: {err}")
    lines = err.strip().splitlines()
    if code == 1 and (len(lines) != 1 or not lines[0].startswith("medtune: error: ")):
        fail(f"{what}: expected one 'medtune: error: ' line, got:\n{err}")
    if code == 2 and not any("--help" in l for l in lines):
        fail(f"{what}: a usage error should point to --help:\n{err}")
    if p.stdout:
        fail(f"{what}: printed to stdout: {p.stdout[:200]!r}")
    print(f"  {what}: exit {code}: {lines[0] if lines else ''}")


def check_sampling():
    work = work_dir("generate_tests", "sampling")
    sampling(fresh_model(os.path.join(work, "random_llama")))
    shared = shared_or_none()
    if shared:
        sampling(os.path.join(shared, "models", "tinystories-656k"))


def refusals(work, tiny, other, context_words):
    """Refusals of model `tiny` (no chat_template, a 512-position context which "word " *
    context_words stays within); `other` is a model of other widths."""
    os.makedirs(work, exist_ok=True)
    # An adapter for `other`, which `tiny` cannot take.
    from safetensors.torch import save_file
    import llama as L
    import model_io
    cfg, _ = model_io.load_model(other)
    adapter = os.path.join(work, "other_adapter")
    os.makedirs(adapter, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in L.lora_init(cfg, 2, ["q_proj"], 1).items()},
              os.path.join(adapter, "adapter_model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(adapter, "adapter_config.json"), "w") as f:
        json.dump({"base_model_name_or_path": "other", "bias": "none", "lora_alpha": 4,
                   "lora_dropout": 0.0, "peft_type": "LORA", "r": 2, "target_modules": ["q_proj"],
                   "task_type": "CAUSAL_LM"}, f)
    ok([other, "--prompt", "Hi", "--max-new", "2", "--adapter", adapter])
    long_prompt = "word " * 700  # > 512 positions
    p = ["--prompt", "Once"]
    print("refusals:")
    expect_error([tiny, "--chat", "hi", "--template", "nosuch"], 1, "unknown template")
    expect_error([tiny, "--chat", "hi"], 1, "auto template without a chat_template")
    expect_error([tiny] + p + ["--adapter", os.path.join(work, "missing")], 1, "missing adapter")
    expect_error([tiny] + p + ["--adapter", adapter], 1, "adapter for another model")
    expect_error([tiny] + p + ["--max-new", "0"], 1, "--max-new 0")
    expect_error([tiny] + p + ["--max-new", "-3"], 1, "--max-new negative")
    expect_error([tiny] + p + ["--max-new", "ten"], 1, "--max-new not a number")
    expect_error([tiny] + p + ["--temperature", "-1"], 1, "negative temperature")
    expect_error([tiny] + p + ["--top-p", "0"], 1, "top-p 0")
    expect_error([tiny] + p + ["--top-p", "1.5"], 1, "top-p 1.5")
    expect_error([tiny] + p + ["--seed", "-1"], 1, "negative seed")
    expect_error([tiny, "--prompt", long_prompt], 1, "prompt longer than the context")
    expect_error([os.path.join(work, "no_model")] + p, 1, "missing model")
    expect_error([tiny], 2, "neither --prompt nor --chat")
    expect_error([tiny, "--prompt", "a", "--chat", "b"], 2, "both --prompt and --chat")
    expect_error([tiny] + p + ["--system", "x"], 2, "--system without --chat")
    expect_error([tiny] + p + ["--bogus"], 2, "unknown option")
    expect_error([tiny, "--prompt"], 2, "missing value")
    expect_error(p, 2, "no MODEL")
    # The context is the limit of generation too: a prompt filling it all but one position.
    res = ok_json([tiny, "--prompt", "word " * context_words, "--max-new", "600"])
    if res["stop"] != "context" or res["prompt_tokens"] + res["new_tokens"] != 513:
        fail(f"expected to stop at the 512-position context: {res['stop']}, "
             f"{res['prompt_tokens']} + {res['new_tokens']}")
    print(f"  generation stops at the context end ({res['prompt_tokens']} + {res['new_tokens']})")


def check_refusals():
    work = work_dir("generate_tests", "refusals")
    tiny = fresh_model(os.path.join(work, "random_llama"), chat_template=False)
    other = fresh_model(os.path.join(work, "other_llama"), hidden_size=48, seed=21)
    refusals(os.path.join(work, "random"), tiny, other, 100)
    shared = shared_or_none()
    if shared:
        models = os.path.join(shared, "models")
        refusals(os.path.join(work, "tinystories"), os.path.join(models, "tinystories-656k"),
                 os.path.join(models, "stories260K"), 250)


if __name__ == "__main__":
    cases = {"help": check_help, "sampling": check_sampling, "stop": check_stop,
             "refusals": check_refusals}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        fail(f"usage: check_cli.py {'|'.join(cases)}")
    cases[sys.argv[1]]()
