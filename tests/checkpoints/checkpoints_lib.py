"""Shared helpers of the checkpoint tests: a small finished run to start from, medtune run
under the fault-injection library (fault_inject.c, LD_PRELOAD), and the check that
checkpoints/latest names a complete checkpoint."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
from train_lib import fail, medtune, skip, write_json  # noqa: E402,F401
from testlib import work_dir as _work_dir  # noqa: E402
from fresh_lib import fresh_model, prep_sample  # noqa: E402

# The status fault_inject.c exits with when it simulates a crash.
CRASHED = 86


def work_dir(name):
    return _work_dir("ckpt_tests", name)


def fault_env(**faults):
    """The environment for a medtune run with the given MEDTUNE_FAULT_* variables set."""
    lib = os.environ.get("MEDTUNE_FAULT_LIB")
    if not lib or not os.path.exists(lib):
        skip("MEDTUNE_FAULT_LIB (the fault-injection library) is not built")
    e = dict(os.environ)
    e["LD_PRELOAD"] = lib
    # Under AddressSanitizer the preloaded library comes before the ASan runtime.
    e["ASAN_OPTIONS"] = ":".join(filter(None, [e.get("ASAN_OPTIONS"), "verify_asan_link_order=0"]))
    for k, v in faults.items():
        e["MEDTUNE_FAULT_" + k] = str(v)
    return e


def small_run(work, steps=2, **extra):
    """A random-weight model (fresh_lib, written in work/model), shards of the quickstart sample
    and a config for a few steps of it, with a checkpoint after every step: what a fresh clone
    has. Returns (config path, run directory)."""
    model = fresh_model(os.path.join(work, "model"))
    shards = prep_sample(os.path.join(work, "shards"), model)
    run_dir = os.path.join(work, "run")
    conf = os.path.join(work, "train.json")
    cfg = {"model": model, "data": {"train": shards},
           "lora": {"r": 4, "alpha": 8}, "optim": {"lr": 1e-3},
           "batch": {"micro_batch": 2, "seq_len": 32}, "steps": steps, "seed": 5,
           "threads": 1, "save_every": 1, "keep_last": 2, "out_dir": run_dir}
    cfg.update(extra)
    write_json(conf, cfg)
    return conf, run_dir


def train(conf, resume=False, env=None, out_dir=None):
    args = [medtune(), "train", conf] + (["--resume"] if resume else [])
    if out_dir:
        args += ["--set", "out_dir=" + out_dir]
    return subprocess.run(args, capture_output=True, text=True, env=env)


def finished_run(work, steps=2, **extra):
    """small_run trained to its end; the test fails when that run fails."""
    conf, run_dir = small_run(work, steps, **extra)
    p = train(conf)
    if p.returncode != 0:
        fail(f"the first run failed: {p.stderr[-2000:]}")
    return conf, run_dir


# state.h5 (format 3) starts with HDF5's 512-byte user block holding this text, NUL-padded:
# the SHA-256 and length of the rest of the file (docs/formats.md). Written here from the
# format's description, independently of checkpoints/state_checksum.c.
STATE_BLOCK = 512
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def state_checksum_block(body):
    text = f"medtune state checksum\nsha256 {hashlib.sha256(body).hexdigest()}\nsize {len(body)}\n"
    return text.encode().ljust(STATE_BLOCK, b"\0")


def state_checksum_problem(path):
    """None when the file's user block records the SHA-256 and size of the rest, else what
    is wrong."""
    data = open(path, "rb").read()
    if len(data) < STATE_BLOCK:
        return f"{len(data)} bytes"
    if data[:STATE_BLOCK] != state_checksum_block(data[STATE_BLOCK:]):
        return f"user block {data[:120]!r} does not match the rest of the file"
    if data[STATE_BLOCK:STATE_BLOCK + 8] != HDF5_SIGNATURE:
        return "no HDF5 superblock after the user block"
    return None


def state_reseal(path):
    """Recomputes the checksum after an edit with h5py (h5py keeps the user block as it was),
    as medtune would have written the edited file."""
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(state_checksum_block(data[STATE_BLOCK:]) + data[STATE_BLOCK:])


def state_strip(path):
    """Removes the user block: the file as medtune wrote it before state format 3 (HDF5 finds
    the superblock at 0 as it found it at 512)."""
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[STATE_BLOCK:])


def check_latest_complete(run_dir, want_step, label):
    """checkpoints/latest names a directory holding a readable state.h5 of `want_step` and a
    whole PEFT adapter (safetensors readable by the safetensors package)."""
    from safetensors.numpy import load_file
    latest = os.path.join(run_dir, "checkpoints", "latest")
    if not os.path.exists(latest):
        fail(f"{label}: checkpoints/latest is missing")
    name = open(latest).read().strip()
    ckpt = os.path.join(run_dir, "checkpoints", name)
    if not os.path.isdir(ckpt):
        fail(f"{label}: latest names {name}, which does not exist")
    state = os.path.join(ckpt, "state.h5")
    if not os.path.exists(state) or state_checksum_problem(state):
        fail(f"{label}: {name}/state.h5 is missing or its checksum does not match: "
             f"{os.path.exists(state) and state_checksum_problem(state)}")
    try:
        tensors = load_file(os.path.join(ckpt, "adapter", "adapter_model.safetensors"))
        json.load(open(os.path.join(ckpt, "adapter", "adapter_config.json")))
    except Exception as e:  # noqa: BLE001 - any failure to read means incomplete
        fail(f"{label}: {name}/adapter is incomplete: {e}")
    if not tensors:
        fail(f"{label}: {name}/adapter holds no tensors")
    p = subprocess.run([medtune(), "info", run_dir, "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"{label}: medtune info {run_dir} failed: {p.stderr.strip()}")
    step = json.loads(p.stdout)["step"]
    if step != want_step:
        fail(f"{label}: latest is step {step}, expected {want_step}")


def copy_run(src, dst):
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    return dst
