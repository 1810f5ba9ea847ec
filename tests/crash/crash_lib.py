"""Shared helpers of the crash tests (tests/cmake/crash.cmake): the tiny self-initialised model
and text shards they run on, killing medtune at a chosen syscall (strace's SIGKILL injection),
a full disk (a small tmpfs), and whole-directory snapshots for byte-for-byte comparisons."""
import contextlib
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import fail, medtune_bin, run, skip  # noqa: E402,F401
from testlib import write_json  # noqa: E402,F401
from testlib import work_dir as _work_dir  # noqa: E402

# The syscalls that change files: a kill just before any of them is a moment "during a write".
WRITE_SYSCALLS = ("write,pwrite64,writev,fsync,fdatasync,ftruncate,rename,renameat,renameat2,"
                  "unlink,unlinkat,rmdir,mkdir,mkdirat")
SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../configs/quickstart")


def work_dir(name):
    return _work_dir("crash_tests", name)


def tiny_model(work):
    """The tiny model medtune initialises itself (model/tiny_model.h), written by a one-step
    `medtune quickstart --tiny`: needs neither ../shared nor a download."""
    qs = os.path.join(work, "qs")
    run(["quickstart", "--tiny", "--steps", "1", "--threads", "1", "--out", qs])
    return os.path.join(qs, "model")


def prep_config(work, name, model, out_dir, **extra):
    """A prep config over the quickstart samples as plain text (every token trained, stream
    packing): the answers of medqa.jsonl and the clinical notes, about 25k tokens."""
    path = os.path.join(work, name + ".json")
    write_json(path, {"tokenizer": model,
                      "inputs": [{"path": os.path.join(SAMPLES, "medqa.jsonl"), "format": "jsonl",
                                  "text_field": "output"},
                                 {"path": os.path.join(SAMPLES, "clinical_notes.txt"),
                                  "format": "text"}],
                      "val_fraction": 0.1, "out_dir": out_dir, **extra})
    return path


def train_config(work, name, model, shards, out_dir, **extra):
    path = os.path.join(work, name + ".json")
    conf = {"model": model, "data": {"train": shards},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.1,
                     "targets": ["q_proj", "v_proj", "o_proj", "down_proj"]},
            "optim": {"lr": 2e-3, "weight_decay": 0.01},
            "schedule": {"warmup_steps": 2, "decay": "cosine", "min_lr_ratio": 0.1},
            "batch": {"micro_batch": 1, "seq_len": 128, "grad_accum": 2},
            "steps": 10, "shuffle": True, "seed": 7, "threads": 1,
            "eval_every": 10, "eval_batches": 2, "save_every": 1, "keep_last": 2,
            "out_dir": out_dir}
    conf.update(extra)
    write_json(path, conf)
    return path


def need_strace():
    if not shutil.which("strace"):
        skip("strace is not installed (tools/bootstrap.sh installs it): it places the kills")
    p = subprocess.run(["strace", "-qq", "-o", "/dev/null", "true"], capture_output=True)
    if p.returncode != 0:
        skip(f"strace cannot trace here (no ptrace permission?): {p.stderr.decode()[-300:]}")


_LINE = re.compile(r"^(\d+)\s+([a-z_0-9]+)\(")


def traced_env():
    """The environment for a traced medtune: LeakSanitizer cannot run under ptrace, so an
    AddressSanitizer build checks leaks only in the untraced runs."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    return env


def trace_writes(args, **kw):
    """Runs medtune `args` under strace and returns its write syscalls in order, as
    (name, n): the n-th call of that name by the main thread. Fails unless it exits 0."""
    log = os.path.join(kw.pop("log_dir"), "strace.log")
    p = subprocess.run(["strace", "-f", "-qq", "-e", f"trace={WRITE_SYSCALLS}", "-o", log,
                        medtune_bin()] + args, capture_output=True, text=True, env=traced_env(),
                       **kw)
    if p.returncode != 0:
        fail(f"medtune {' '.join(args)} under strace exited {p.returncode}: {p.stderr[-1500:]}")
    events, counts, main = [], {}, None
    with open(log) as f:
        for line in f:
            m = _LINE.match(line)
            if not m:  # "<... write resumed>" continues a call already counted
                continue
            pid, name = int(m.group(1)), m.group(2)
            main = pid if main is None else main
            if pid != main:
                fail(f"thread {pid} wrote ({line.strip()}): the kill points assume that only "
                     "the main thread writes files")
            counts[name] = counts.get(name, 0) + 1
            events.append((name, counts[name]))
    os.unlink(log)
    return events


def run_killed(args, event, **kw):
    """Runs medtune `args` and kills it with SIGKILL just before the syscall `event` (name, n)
    would run. Returns True when the kill happened (False: the run ended before it)."""
    name, n = event
    p = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={name}",
                        "-e", f"inject={name}:signal=KILL:when={n}", medtune_bin()] + args,
                       capture_output=True, text=True, env=traced_env(), **kw)
    return p.returncode in (-9, 137)


def pick(events, count, rng):
    """Kill points (indices into events): every rename, unlink and rmdir, where one state of
    the output turns into the next, plus a seeded sample of the other events up to `count`."""
    structural = [i for i, (name, _) in enumerate(events)
                  if name.startswith(("rename", "unlink", "rmdir"))]
    rest = [i for i in range(len(events)) if i not in structural]
    return sorted(structural + rng.sample(rest, min(max(count - len(structural), 0), len(rest))))


def snapshot(path):
    """relative path -> bytes of every file under `path` (directories as None), or None when
    `path` does not exist."""
    if not os.path.exists(path):
        return None
    if os.path.isfile(path):
        return {"": open(path, "rb").read()}
    out = {}
    for root, dirs, files in os.walk(path):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), path)] = None
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, path)] = open(p, "rb").read()
    return out


def diff(a, b):
    """A short description of how two snapshots differ ('' when identical)."""
    if a is None or b is None:
        return "" if a is b else ("missing" if a is None else "present")
    names = sorted(set(a) ^ set(b))
    if names:
        return "files differ: " + ", ".join(names[:6])
    changed = sorted(k for k in a if a[k] != b[k])
    return "contents differ: " + ", ".join(changed[:6]) if changed else ""


def one_error_line(p):
    """'' when `p` failed the way medtune must refuse bad input: exit 1 and exactly one stderr
    line 'medtune: error: <file>: <problem>' (progress lines before it allowed); else why not."""
    errors = [line for line in p.stderr.splitlines() if line.startswith("medtune: error:")]
    if p.returncode != 1 or len(errors) != 1:
        return f"exit {p.returncode}, stderr: {p.stderr[-800:]!r}"
    if ": " not in errors[0][len("medtune: error: "):]:
        return f"the error names no file: {errors[0]}"
    return ""


@contextlib.contextmanager
def small_disk(path, size):
    """A tmpfs of `size` (e.g. "600k") mounted at `path`: writes past it fail with ENOSPC.
    Skips the test when it cannot be mounted (mounting needs root)."""
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        skip(f"cannot mount a {size} tmpfs to fill (needs root): {p.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", path], check=True)
