#!/usr/bin/env python3
"""The export/merge/info command line: bad inputs give one `medtune: error:` line naming the
file and exit 1 (a missing checkpoint, a corrupt state.h5, an adapter for another model, an
unwritable or occupied output), usage errors exit 2, --help lists every option with its
default, and `info --json` on adapters and checkpoints matches the files (safetensors pip,
metrics.jsonl). On a random-weight llama and, when ../shared is there, on tinystories-656k."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_lib import fail, for_each_base, other_model, read_peft, run, trained_run  # noqa: E402
from testlib import expect_error  # noqa: E402


def check_cli(work, model):
    other = other_model(work, model)
    out = trained_run(work, model)
    ckpt = os.path.join(out, "checkpoints", "step_00000006")
    adapter = os.path.join(work, "adapter")
    run(["export", ckpt, adapter])

    missing = os.path.join(work, "no_such_run")
    expect_error(["export", missing, os.path.join(work, "x")], missing)
    expect_error(["export", work, os.path.join(work, "x")], work, "not a checkpoint")
    broken = os.path.join(work, "broken")
    os.makedirs(broken)
    with open(os.path.join(ckpt, "state.h5"), "rb") as f:
        head = f.read(4096)
    with open(os.path.join(broken, "state.h5"), "wb") as f:
        f.write(head)
    expect_error(["export", broken, os.path.join(work, "x")], "state.h5")
    expect_error(["export", ckpt, os.path.join(work, "x"), "--model", other], "state.h5",
                 "lora/base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
    expect_error(["merge", other, adapter, os.path.join(work, "m")], "adapter_model.safetensors",
                 "lora_A.weight", "shape")
    expect_error(["merge", model, os.path.join(work, "nothing"), os.path.join(work, "m")],
                 "nothing")
    blocker = os.path.join(work, "a_file")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    expect_error(["export", ckpt, os.path.join(blocker, "out")], blocker)
    expect_error(["export", ckpt, os.path.join(blocker, "a.gguf"), "--format", "gguf"], blocker)
    expect_error(["merge", model, adapter, os.path.join(blocker, "m")], blocker)
    expect_error(["merge", model, adapter, work], work, "not an empty directory")
    expect_error(["merge", model, adapter, os.path.join(work, "m"), "--dtype", "f16"],
                 "GGUF bases only")
    for d in ("x", "m", "m.partial"):
        if os.path.exists(os.path.join(work, d)):
            fail(f"a refused command left {d} behind")

    for args in (["export"], ["export", ckpt], ["export", ckpt, "x", "--format", "onnx"],
                 ["export", ckpt, "x", "--bogus"], ["merge", model, adapter],
                 ["merge", model, adapter, "x", "--dtype", "q4"],
                 ["merge", model, adapter, "x", "--max-shard-size", "lots"]):
        run(args, expect=2)
    print("ok: usage errors exit 2")

    h = run(["export", "--help"]).stdout
    for s in ("--format peft|gguf", "default: peft", "--model MODEL", "--help"):
        if s not in h:
            fail(f"export --help lacks {s!r}")
    h = run(["merge", "--help"]).stdout
    for s in ("--dtype f32|f16", "default: f32", "--max-shard-size", "default: 2G", "--help"):
        if s not in h:
            fail(f"merge --help lacks {s!r}")
    print("ok: --help lists every option with its default")

    info = json.loads(run(["info", "--json", adapter]).stdout)
    cfg, tensors = read_peft(adapter)
    want = {"kind": "adapter", "r": cfg["r"], "alpha": cfg["lora_alpha"],
            "scale": cfg["lora_alpha"] / cfg["r"], "targets": cfg["target_modules"] and sorted(
                cfg["target_modules"], key=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                            "up_proj", "down_proj"].index),
            "n_tensors": len(tensors), "n_params": sum(t.size for t in tensors.values()),
            "base_model": model,
            "n_layers": json.load(open(os.path.join(model, "config.json")))["num_hidden_layers"]}
    for k, v in want.items():
        if info.get(k) != v:
            fail(f"info --json adapter: {k} = {info.get(k)!r}, expected {v!r}")
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    for path in (ckpt, out):
        info = json.loads(run(["info", "--json", path]).stdout)
        if (info["kind"] != "checkpoint" or info["step"] != 6 or
                info["tokens_seen"] != rows[-1]["tokens"] or info["config"]["model"] != model or
                info["adapter"]["n_params"] != want["n_params"]):
            fail(f"info --json {path}: {info}")
    text = run(["info", ckpt]).stdout
    for s in ("step                 6", "r / alpha            4 / 8 (scale 2", "tensors",
              "parameters"):
        if s not in text:
            fail(f"info {ckpt} lacks {s!r}:\n{text}")
    print("ok: info on adapters, checkpoints and run directories")


if __name__ == "__main__":
    for_each_base("cli", check_cli)
