#!/usr/bin/env python3
"""state.h5 carries a SHA-256 of itself in HDF5's user block (state format 3, docs/formats.md),
checked before libhdf5 opens the file:
  - the block medtune writes matches the file (recomputed here with hashlib) and h5py reads the
    file (user block of 512 bytes);
  - a changed byte anywhere after the block, a truncated or extended file, a damaged block, a
    zeroed block and an empty file are refused by info, export and resume with one error line
    naming state.h5 and the problem;
  - the corrupt files on which libhdf5 1.10 reads out of bounds (tests/fuzz/known/state, behind
    the checksum of the file they came from: tests/fuzz/regress/state/checksummed_*) are refused
    on the checksum."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoints_lib import (STATE_BLOCK, fail, finished_run, state_checksum_problem, train,  # noqa: E402
                             work_dir)
from testlib import expect_error, source_dir  # noqa: E402


def latest_ckpt(run_dir):
    name = open(os.path.join(run_dir, "checkpoints", "latest")).read().strip()
    return os.path.join(run_dir, "checkpoints", name)


def damaged(run_dir, work, label, edit):
    """A copy of the run whose latest state.h5 bytes are replaced by edit(bytes)."""
    dst = os.path.join(work, label)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(run_dir, dst)
    state = os.path.join(latest_ckpt(dst), "state.h5")
    data = open(state, "rb").read()
    with open(state, "wb") as f:
        f.write(edit(data))
    return dst


def flip(offset):
    return lambda d: d[:offset] + bytes([d[offset] ^ 0x01]) + d[offset + 1:]


def main():
    import h5py
    work = work_dir("state_checksum")
    conf, run_dir = finished_run(work, steps=2)
    state = os.path.join(latest_ckpt(run_dir), "state.h5")
    problem = state_checksum_problem(state)
    if problem:
        fail(f"{state}: {problem}")
    with h5py.File(state, "r") as f:
        if f.userblock_size != STATE_BLOCK or int(f.attrs["format_version"]) != 3:
            fail(f"h5py: user block {f.userblock_size}, format {f.attrs['format_version']}")
    size = os.path.getsize(state)
    print(f"state.h5: {size} bytes, its SHA-256 matches the user block; h5py reads it")

    cases = [
        ("superblock", flip(STATE_BLOCK), "SHA-256", "corrupt"),
        ("middle", flip(STATE_BLOCK + (size - STATE_BLOCK) // 2), "SHA-256", "corrupt"),
        ("last_byte", flip(size - 1), "SHA-256", "corrupt"),
        ("truncated", lambda d: d[:-1], "truncated"),
        ("truncated_in_block", lambda d: d[:100], "shorter than its checksum block"),
        ("extended", lambda d: d + b"\0", "truncated or corrupt"),
        ("block_padding", flip(STATE_BLOCK - 1), "checksum block"),
        ("block_digest", lambda d: d.replace(b"sha256 ", b"sha256 0", 1)[:len(d)], "checksum block"),
        ("block_zeroed", lambda d: b"\0" * STATE_BLOCK + d[STATE_BLOCK:], "not a medtune state file"),
        ("empty", lambda d: b"", "not a medtune state file"),
    ]
    for label, edit, *needles in cases:
        dst = damaged(run_dir, work, label, edit)
        expect_error(["info", dst], "state.h5", *needles)
    # Every command that reads a state checks it: export and resume too.
    dst = damaged(run_dir, work, "export_resume", flip(size // 2))
    expect_error(["export", latest_ckpt(dst), os.path.join(work, "out")], "state.h5", "SHA-256")
    p = train(conf, resume=True, out_dir=dst)
    errors = [l for l in p.stderr.splitlines() if l.startswith("medtune: error:")]
    if p.returncode != 1 or len(errors) != 1 or "SHA-256" not in errors[0]:
        fail(f"resume of a corrupt state.h5: exit {p.returncode}, expected 1 and one error "
             f"line naming the checksum:\n{p.stderr[-1500:]}")
    print(f"resume: {errors[0]}")

    regress = os.path.join(source_dir(), "tests", "fuzz", "regress", "state")
    known = sorted(n for n in os.listdir(regress) if n.startswith("checksummed_"))
    if not known:
        fail(f"{regress}: no checksummed_* inputs")
    for name in known:
        body = open(os.path.join(regress, name), "rb").read()
        dst = damaged(run_dir, work, name, lambda d: body)
        expect_error(["info", dst], "state.h5", "SHA-256", "corrupt")
    print(f"{len(known)} libhdf5 crash inputs refused on their checksum")
    print("PASS")


if __name__ == "__main__":
    main()
