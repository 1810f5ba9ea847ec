#!/usr/bin/env python3
"""The model fingerprint covers every weight byte. (1) The SHA-256 of the weight tensors as
stored (`medtune info --json`: weights_sha256) equals an independent computation from the
files (checkpoints_ref.py) for the random-weight model a test writes (fresh_lib), the two
../shared Hugging Face models when ../shared is there and the SmolLM2 GGUF when .cache has it.
(2) Changing one weight - one the former fingerprint, a strided sample, did not read - changes
the fingerprint, and a resume on the changed model is refused."""
import json
import os
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoints_lib import fail, medtune, small_run, train, work_dir  # noqa: E402
from checkpoints_ref import gguf_weights_sha256, hf_weights_sha256  # noqa: E402
from fresh_lib import shared_or_none  # noqa: E402
from testlib import smollm2  # noqa: E402


def info(path):
    t0 = time.perf_counter()
    p = subprocess.run([medtune(), "info", path, "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"medtune info {path}: {p.stderr.strip()}")
    return json.loads(p.stdout), time.perf_counter() - t0


def check_reference(path, want):
    o, dt = info(path)
    if o.get("weights_sha256") != want:
        fail(f"{path}: weights_sha256 {o.get('weights_sha256')}, the files give {want}")
    print(f"{os.path.basename(path)}: weights_sha256 {want[:16]}... matches "
          f"({os.path.getsize(path) if os.path.isfile(path) else 0} bytes, info {dt:.2f} s)")


def main():
    # The run's model doubles as the fresh-clone Hugging Face case of (1).
    work = work_dir("fingerprint")
    conf, run_dir = small_run(work, steps=2)
    model = json.load(open(conf))["model"]
    check_reference(model, hf_weights_sha256(model))
    shared = shared_or_none()
    for name in ("tinystories-656k", "stories260K") if shared else ():
        d = os.path.join(shared, "models", name)
        check_reference(d, hf_weights_sha256(d))
    gguf_path = smollm2()
    if gguf_path:
        check_reference(gguf_path, gguf_weights_sha256(gguf_path))
    else:
        print("SmolLM2 GGUF absent (tools/bootstrap.sh fetches it): GGUF case not run")

    # One float changed: element 1 of the embedding, the first tensor. The former fingerprint
    # hashed every (n/65536+1)-th float and the last 4096, so it never read this one.
    p = train(conf)
    if p.returncode != 0:
        fail(f"the first run failed: {p.stderr[-2000:]}")
    other = os.path.join(work, "model_one_weight_changed")
    shutil.copytree(model, other)
    st = os.path.join(other, "model.safetensors")
    raw = bytearray(open(st, "rb").read())
    n = struct.unpack_from("<Q", raw, 0)[0]
    header = json.loads(raw[8:8 + n])
    name = "model.embed_tokens.weight" if "model.embed_tokens.weight" in header else "lm_head.weight"
    if header[name]["dtype"] != "F32":
        fail(f"{name}: expected F32 in the test model")
    at = 8 + n + header[name]["data_offsets"][0] + 4  # element 1
    v = struct.unpack_from("<f", raw, at)[0]
    struct.pack_into("<f", raw, at, v + 0.5)
    open(st, "wb").write(raw)
    a, b = info(model)[0]["fingerprint"], info(other)[0]["fingerprint"]
    if a == b:
        fail(f"changing {name}[1] left the fingerprint unchanged ({a})")
    print(f"{name}[1] {v} -> {v + 0.5}: fingerprint changed")
    p = subprocess.run([medtune(), "train", conf, "--resume", "--set", f"model={other}"],
                       capture_output=True, text=True)
    errors = [l for l in p.stderr.splitlines() if l.startswith("medtune: error:")]
    if p.returncode != 1 or len(errors) != 1 or "base model" not in errors[0]:
        fail(f"resume on the changed model: exit {p.returncode}, stderr {p.stderr[-1500:]}")
    print(f"resume on it refused: {errors[0]}")
    print("PASS")


if __name__ == "__main__":
    main()
