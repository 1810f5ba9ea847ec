#!/usr/bin/env python3
"""A full disk during `medtune prep`, `export` or `merge` (argv[1]): one line
`medtune: error: <file>: ... No space left on device` naming the file, exit 1, and the output
already there is untouched (and no partial output is left).

The output goes to a small tmpfs. A complete earlier output is written there first, then a
filler file leaves only FREE bytes, for each FREE in a range from nothing to almost what the
new output needs, so the disk fills at a different point of the write each time (shard
frames, manifest, safetensors, config, rename)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash_lib import (diff, fail, medtune_bin, one_error_line, prep_config, run,  # noqa: E402
                       small_disk, snapshot, tiny_model, train_config, work_dir)

PAGE = 4096


def fill(disk, free):
    """Leaves about `free` bytes free on `disk` (tmpfs counts whole pages)."""
    filler = os.path.join(disk, "filler")
    if os.path.exists(filler):
        os.unlink(filler)
    st = os.statvfs(disk)
    avail = st.f_bavail * st.f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(avail - free, 0))


def size_of(snap):
    """The bytes an output takes on tmpfs: whole pages per file."""
    return sum((len(v) + PAGE - 1) // PAGE * PAGE for v in snap.values() if v is not None)


def listing(disk):
    return sorted(n for n in os.listdir(disk) if n != "filler")


def check(label, disk, args, out, need):
    """Runs `args` (writing `out`) with 0 .. need bytes free; `out` holds an earlier output or
    nothing, which must stay as it was, and nothing else may be left on the disk."""
    before, names = snapshot(out), listing(disk)
    tried = 0
    for free in range(0, need, max(PAGE, need // 16 // PAGE * PAGE)):
        fill(disk, free)
        p = subprocess.run([medtune_bin()] + args, capture_output=True, text=True)
        why = one_error_line(p)
        if why:
            fail(f"{label}, {free} bytes free: not one error line: {why}")
        line = [x for x in p.stderr.splitlines() if x.startswith("medtune: error:")][0]
        if "No space left on device" not in line or disk not in line:
            fail(f"{label}, {free} bytes free: the error does not name a file on the full disk "
                 f"and the cause: {line}")
        if diff(snapshot(out), before):
            fail(f"{label}, {free} bytes free: the earlier output changed: "
                 f"{diff(snapshot(out), before)}")
        if listing(disk) != names:
            fail(f"{label}, {free} bytes free: the disk holds {listing(disk)}, before {names}")
        tried += 1
        print(f"ok: {label}, {free} bytes free: {line}")
    os.unlink(os.path.join(disk, "filler"))
    run(args)  # with room again, the same command succeeds
    return tried


def prep_case(work, model, disk):
    # The earlier output: shards of other settings; the new one does not fit beside it.
    out = os.path.join(disk, "shards")
    run(["prep", prep_config(work, "old", model, out, val_fraction=0.3)])
    conf = prep_config(work, "new", model, out)
    ref = os.path.join(work, "ref")
    run(["prep", conf, "--set", f"out_dir={ref}"])
    need = size_of(snapshot(ref))
    n = check("prep over an earlier shard directory", disk, ["prep", conf], out, need)
    # The earlier shards stayed usable all along, and the last run replaced them whole.
    if diff(snapshot(out), snapshot(ref)):
        fail(f"prep with room again did not give the uninterrupted output: "
             f"{diff(snapshot(out), snapshot(ref))}")
    new = os.path.join(disk, "new_shards")
    n += check("prep into a new directory", disk, ["prep", conf, "--set", f"out_dir={new}"],
               new, need)
    return n


def export_case(work, model, disk):
    shards = os.path.join(work, "shards")
    run(["prep", prep_config(work, "shards", model, shards)])
    ckpts = []
    for name, alpha in (("run_a", 8), ("run_b", 16)):
        run(["train", train_config(work, name, model, shards, os.path.join(work, name), steps=2,
                                   lora={"r": 4, "alpha": alpha})])
        ckpts.append(os.path.join(work, name, "checkpoints/step_00000002"))
    n = 0
    for fmt, suffix in (("peft", ""), ("gguf", ".gguf")):
        out = os.path.join(disk, "adapter" + suffix)
        run(["export", ckpts[0], out, "--format", fmt])
        ref = os.path.join(work, "ref" + suffix)
        run(["export", ckpts[1], ref, "--format", fmt])
        n += check(f"export {fmt} over an earlier export", disk,
                   ["export", ckpts[1], out, "--format", fmt], out, size_of(snapshot(ref)))
        if diff(snapshot(out), snapshot(ref)):
            fail(f"export {fmt} with room again: {diff(snapshot(out), snapshot(ref))}")
    return n


def merge_case(work, model, disk):
    shards = os.path.join(work, "shards")
    run(["prep", prep_config(work, "shards", model, shards)])
    run(["train", train_config(work, "run", model, shards, os.path.join(work, "run"), steps=2)])
    adapter = os.path.join(work, "run/adapter")
    ref = os.path.join(work, "ref")
    run(["merge", model, adapter, ref])
    out = os.path.join(disk, "merged")
    return check("merge into a new directory", disk, ["merge", model, adapter, out], out,
                 size_of(snapshot(ref)))


def main():
    cases = {"prep": (prep_case, "600k"), "export": (export_case, "600k"),
             "merge": (merge_case, "8m")}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        fail(f"usage: {sys.argv[0]} {'|'.join(cases)}")
    case, size = cases[sys.argv[1]]
    work = work_dir("full_disk_" + sys.argv[1])
    model = tiny_model(work)
    with small_disk(os.path.join(work, "disk"), size) as disk:
        n = case(work, model, disk)
    print(f"{n} full-disk runs, each one error line naming the file; earlier output untouched")
    print("PASS")


if __name__ == "__main__":
    main()
