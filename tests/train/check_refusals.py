#!/usr/bin/env python3
"""What `medtune train` refuses, each with one clear line and exit 1, losing nothing:
resume with a changed setting / base model / shard set, a new run over an existing one,
NaN loss (the last good checkpoint is kept), an unwritable output directory, unknown keys.
Always on a random-weight GQA model with the quickstart sample; also on tinystories-656k with
the PubMed sample when ../shared is there."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from train_lib import fail, prep_pubmed, run, work_dir, write_json  # noqa: E402
from fresh_lib import fresh_model, prep_sample, shared_or_none  # noqa: E402
from testlib import expect_error as testlib_expect_error  # noqa: E402


def expect_error(args, *needles, env=None):
    # `train` prints its start line before a failure: only the error line must be unique.
    e = dict(os.environ, **env) if env else None
    return testlib_expect_error(args, *needles, only=False, env=e)


def tmpfs_pages(path):
    """4 KiB pages the files under `path` take on a tmpfs."""
    return sum(-(-os.path.getsize(os.path.join(d, f)) // 4096)
               for d, _, files in os.walk(path) for f in files)


def disk_full(conf, work, size_kb, message):
    """A tmpfs of size_kb that holds one checkpoint of this run and its small files, but not
    two checkpoints: the second save fails with a clear error naming the file and saying
    `message`, and the first checkpoint stays complete and `latest`. Where the space runs out
    decides the message: inside HDF5 (state.h5) errno is lost and medtune says "disk full?",
    in its own writes it gives the system's message."""
    mnt = os.path.join(work, "tinyfs")
    os.makedirs(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", mnt],
                      capture_output=True).returncode != 0:
        print("note: cannot mount a small tmpfs here (not root?); disk-full check skipped")
        return
    try:
        out = os.path.join(mnt, "run")
        expect_error(["train", conf, "--set", f"out_dir={out}", "--set", "save_every=2",
                      "--set", "keep_last=1"], mnt, message)
        if open(os.path.join(out, "checkpoints/latest")).read() != "step_00000002\n":
            fail("after disk full, latest must name the previous checkpoint")
        left = sorted(os.listdir(os.path.join(out, "checkpoints")))
        if left != ["latest", "step_00000002"]:
            fail(f"after disk full, checkpoints/ holds {left}")
        run(["info", os.path.join(out, "checkpoints/step_00000002/adapter")], expect=None)
    finally:
        subprocess.run(["umount", mnt])


def check_refusals(work, model, shards, other_shards, disk_full_message, disk_kb=None):
    """The refusals on `model`; the disk-full check uses a tmpfs of disk_kb, by default one
    and a half checkpoints of this run and 8 pages for its small files."""
    out = os.path.join(work, "run")
    base = {"model": model, "data": {"train": shards}, "lora": {"r": 4, "dropout": 0.0},
            "batch": {"micro_batch": 2, "seq_len": 32}, "steps": 6, "save_every": 3,
            "threads": 2, "out_dir": out}
    conf = os.path.join(work, "train.json")
    write_json(conf, base)
    run(["train", conf])
    latest = open(os.path.join(out, "checkpoints/latest")).read()

    expect_error(["train", conf], "already holds a run", "--resume")
    expect_error(["train", conf, "--resume", "--set", "optim.lr=0.1"], "optim.lr")
    expect_error(["train", conf, "--resume", "--set", "lora.r=8"], "lora.r")
    expect_error(["train", conf, "--resume", "--set", "batch.seq_len=64"], "batch.seq_len")

    other_model = os.path.join(work, "other_model")
    shutil.copytree(model, other_model)
    from safetensors.torch import load_file, save_file
    st = os.path.join(other_model, "model.safetensors")
    w = load_file(st)
    w["model.norm.weight"] = w["model.norm.weight"] * 1.5
    save_file(w, st, metadata={"format": "pt"})
    expect_error(["train", conf, "--resume", "--set", f"model={other_model}"], "base model")

    expect_error(["train", conf, "--resume", "--set", f"data.train={other_shards}"],
                 "shards")
    # Allowed changes: the run length and the checkpoint cadence.
    run(["train", conf, "--resume", "--set", "steps=8", "--set", "save_every=4"])
    if open(os.path.join(out, "checkpoints/latest")).read() != "step_00000008\n":
        fail("resume with steps=8 did not end at step 8")
    print("ok: resume with a longer run and another save_every")

    nan_out = os.path.join(work, "nan")
    expect_error(["train", conf, "--set", f"out_dir={nan_out}", "--set", "steps=10"],
                 "step 5", "NaN", "step_00000003", env={"MEDTUNE_INJECT_NAN_STEP": "5"})
    if open(os.path.join(nan_out, "checkpoints/latest")).read() != "step_00000003\n":
        fail("after NaN, latest must still name the last good checkpoint")
    run(["info", os.path.join(nan_out, "checkpoints/step_00000003/adapter")], expect=None)

    blocker = os.path.join(work, "a_file")
    open(blocker, "w").write("not a directory\n")
    expect_error(["train", conf, "--set", f"out_dir={blocker}/run"], blocker)
    ckpt_kb = 4 * tmpfs_pages(os.path.join(out, "checkpoints", latest.strip()))
    disk_full(conf, work, disk_kb or ckpt_kb * 3 // 2 + 32, disk_full_message)
    expect_error(["train", conf, "--set", "lora.rank=4"], "lora.rank")
    expect_error(["train", conf, "--set", "schedule.decay=exp"], "schedule.decay")


def main():
    work = work_dir("refusals_random")
    model = fresh_model(os.path.join(work, "model"))
    print(f"random GQA model, quickstart sample: {model}")
    check_refusals(work, model, prep_sample(os.path.join(work, "shards"), model),
                   prep_sample(os.path.join(work, "shards2"), model, val_fraction=0.3),
                   "state.h5: writing the training state failed (disk full?)")
    shared = shared_or_none()
    if shared:
        work = work_dir("refusals")
        model = os.path.join(shared, "models/tinystories-656k")
        print(f"tinystories-656k, PubMed sample: {model}")
        check_refusals(work, model, prep_pubmed(shared, os.path.join(work, "shards"), model),
                       prep_pubmed(shared, os.path.join(work, "shards2"), model,
                                   val_fraction=0.3),
                       "No space left on device", disk_kb=700)
    print("PASS")


if __name__ == "__main__":
    main()
