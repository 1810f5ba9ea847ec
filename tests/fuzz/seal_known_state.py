#!/usr/bin/env python3
"""Writes tests/fuzz/regress/state/checksummed_<name> from each tests/fuzz/known/state/<name>:
the corrupt state.h5 files on which libhdf5 1.10 reads out of bounds, as they would reach
medtune since state format 3, behind the checksum block of the file they were mutated from.

The known inputs are campaign mutations (same length, bytes changed) of the format-1 seed
tests/fuzz/corpus/state/step_00000001 of that campaign, SHA-256 ORIGINAL_SHA256 below. The
block records that digest and length, as if the seed had been written with its checksum and
then damaged on disk: the reader must refuse the file on the checksum, before libhdf5 opens it
(fuzz_replay_state, tests/checkpoints/check_state_checksum.py). The block is written here from
docs/formats.md, not by medtune."""
import os

ORIGINAL_SHA256 = "f28d8635ea49072a2122e37fb46c8bb386957000a5b055be928091002a7e5aba"
ORIGINAL_SIZE = 30184
BLOCK = 512

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    known = os.path.join(HERE, "known", "state")
    out = os.path.join(HERE, "regress", "state")
    block = f"medtune state checksum\nsha256 {ORIGINAL_SHA256}\nsize {ORIGINAL_SIZE}\n".encode()
    block = block.ljust(BLOCK, b"\0")
    for name in sorted(os.listdir(known)):
        body = open(os.path.join(known, name), "rb").read()
        if len(body) != ORIGINAL_SIZE:
            raise SystemExit(f"{name}: {len(body)} bytes, not a same-length mutation of the seed")
        with open(os.path.join(out, "checksummed_" + name), "wb") as f:
            f.write(block + body)
        print("checksummed_" + name)


if __name__ == "__main__":
    main()
