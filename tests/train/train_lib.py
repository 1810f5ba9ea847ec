"""Shared helpers of the training tests: paths, skipping, running medtune, reading shards."""
import json
import os
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import env, fail, run, shared_dir, skip  # noqa: E402,F401
from testlib import write_json  # noqa: E402,F401
from testlib import medtune_bin as medtune  # noqa: E402,F401
from testlib import work_dir as _work_dir  # noqa: E402


def work_dir(name):
    return _work_dir("train_tests", name)


def write_peft_adapter(adapter_dir, lora, **config):
    """A PEFT LoRA adapter directory from twin LoRA tensors (llama.lora_init) and the
    adapter_config.json keys given (peft_type LORA and task_type CAUSAL_LM are added)."""
    from safetensors.torch import save_file
    os.makedirs(adapter_dir)
    save_file({k: v.detach().contiguous() for k, v in lora.items()},
              os.path.join(adapter_dir, "adapter_model.safetensors"), metadata={"format": "pt"})
    write_json(os.path.join(adapter_dir, "adapter_config.json"),
               {"peft_type": "LORA", "task_type": "CAUSAL_LM", **config})
    return adapter_dir


def prep_pubmed(shared, out_dir, tokenizer, val_fraction=0.1):
    """Shards of the real PubMed XML sample, tokenized for `tokenizer`."""
    cfg = os.path.join(os.path.dirname(out_dir), os.path.basename(out_dir) + "_prep.json")
    write_json(cfg, {"tokenizer": tokenizer,
                     "inputs": [{"path": os.path.join(shared, "data/pubmed_xml/*.xml"),
                                 "format": "pubmed-xml"}],
                     "val_fraction": val_fraction, "out_dir": out_dir})
    run(["prep", cfg])
    return out_dir


def read_split_words(shard_dir, split):
    """All uint32 words of a split, decoded from the shard files independently of medtune
    (layout: docs/formats.md): zstd frames located through the footer's frame index."""
    import zstandard
    manifest = json.load(open(os.path.join(shard_dir, "manifest.json")))
    files = sorted(f for f in os.listdir(shard_dir) if f.startswith(split + "-"))
    words = []
    dctx = zstandard.ZstdDecompressor()
    for name in files:
        data = open(os.path.join(shard_dir, name), "rb").read()
        foot = data[-64:]
        if foot[:8] != b"MTSHARD1":
            fail(f"{name}: bad magic")
        n_frames = struct.unpack_from("<I", foot, 32)[0]
        index_off = struct.unpack_from("<Q", foot, 40)[0]
        for f in range(n_frames):
            off, size, _crc = struct.unpack_from("<QII", data, index_off + 16 * f)
            raw = dctx.decompress(data[off:off + size], max_output_size=1 << 28)
            words.extend(struct.unpack(f"<{len(raw) // 4}I", raw))
    return words, manifest


def stream_windows(words, T):
    """Stream packing: window i = words [i*T, i*T+T+1); target j trained iff word j+1 has the
    trained bit. Returns lists of (tokens[T], targets[T]) with -1 for untrained targets."""
    n = (len(words) - 1) // T
    out = []
    for i in range(n):
        w = words[i * T:i * T + T + 1]
        toks = [x & 0x3FFFFFFF for x in w]
        tg = [toks[j + 1] if w[j + 1] & 0x80000000 else -1 for j in range(T)]
        out.append((toks[:T], tg))
    return out


def metrics(run_dir):
    rows = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            rows.append(json.loads(line))
    return rows


def loss_strings(run_dir):
    """step -> the exact text of its loss / val_loss fields (bit-exact comparison)."""
    out = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            parts = [p for p in line.strip("{}\n").split(", ") if p.startswith(('"loss"', '"val_loss"'))]
            out[d["step"]] = parts
    return out


def steps_done(run_dir):
    """Training steps logged so far in run_dir/metrics.jsonl (0 before the file exists)."""
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            return sum(1 for line in f if '"loss"' in line)
    except FileNotFoundError:
        return 0


def train_until_sigterm(conf, run_dir, after, total):
    """Starts `medtune train conf` and sends SIGTERM once `after` steps are logged: the run must
    finish the step, save, say "stopped at step" and exit 0 before its last step `total`.
    Returns the steps done."""
    p = subprocess.Popen([medtune(), "train", conf], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    while steps_done(run_dir) < after and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate()
    stopped = steps_done(run_dir)
    if p.returncode != 0 or "stopped at step" not in err:
        fail(f"SIGTERM: exit {p.returncode} after {stopped} steps, stderr {err[-1000:]}")
    if stopped >= total:
        fail("SIGTERM arrived after the run ended; the test needs a slower run")
    return stopped


def fresh_then_shared(name, check):
    """check(work, model, shards, replay) on a fresh clone's random GQA model and quickstart
    sample (replay: its Q&A pairs in the chat template), then, when ../shared is there, on
    tinystories-656k and the PubMed sample (replay: the same shards)."""
    from fresh_lib import fresh_training_data, shared_or_none
    work = work_dir(name + "_random")
    print("random GQA model, quickstart sample (replay: its Q&A pairs in the chat template)")
    check(work, *fresh_training_data(work))
    shared = shared_or_none()
    if shared:
        work = work_dir(name)
        model = os.path.join(shared, "models/tinystories-656k")
        print(f"tinystories-656k, PubMed sample: {model}")
        shards = prep_pubmed(shared, os.path.join(work, "shards"), model)
        check(work, model, shards, shards)
    print("PASS")


def compare(ref_dir, other_dir, label):
    """Losses and val losses identical as text (the same doubles), adapters byte-identical."""
    a, b = loss_strings(ref_dir), loss_strings(other_dir)
    if sorted(a) != sorted(b):
        fail(f"{label}: steps in metrics.jsonl differ: {sorted(set(a) ^ set(b))[:5]}")
    for step in sorted(a):
        if a[step] != b[step]:
            fail(f"{label}: step {step}: {a[step]} vs {b[step]}")
    fa = open(os.path.join(ref_dir, "adapter/adapter_model.safetensors"), "rb").read()
    fb = open(os.path.join(other_dir, "adapter/adapter_model.safetensors"), "rb").read()
    if fa != fb:
        fail(f"{label}: final adapters differ")
    print(f"{label}: {len(a)} metric lines identical, final adapter byte-identical")
