#!/usr/bin/env python3
"""state.h5 records its state format and the medtune version that wrote it, and resume and
info follow the documented rule (docs/formats.md, docs/design.md section 7):
  - format_version 3, medtune_version = the project version in CMakeLists.txt, and threads
    (read here with h5py), shown by `medtune info`;
  - a newer state format is refused by info and by resume, naming both formats;
  - format 1 (before versions, sampled model fingerprint) is described by info but resume is
    refused with the reason and the way out (init_adapter);
  - format 2 (no checksum: no user block) is read and resumed, with one warning line saying
    its integrity is not verified;
  - another medtune version resumes with one warning line naming both versions."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoints_lib import fail, medtune, finished_run, state_reseal, state_strip, train, work_dir  # noqa: E402


def project_version():
    src = os.environ.get("MEDTUNE_SOURCE", os.path.join(os.path.dirname(__file__), "../.."))
    m = re.search(r"project\(medtune VERSION ([0-9.]+)", open(os.path.join(src, "CMakeLists.txt")).read())
    if not m:
        fail("CMakeLists.txt: no project(medtune VERSION x.y.z)")
    return m.group(1)


def state_path(run_dir):
    name = open(os.path.join(run_dir, "checkpoints", "latest")).read().strip()
    return os.path.join(run_dir, "checkpoints", name, "state.h5")


def variant(src, dst, edit, legacy=False):
    """A copy of the run whose latest state.h5 has its attributes edited, then checksummed
    again as medtune writes it, or (legacy) without its checksum block as before format 3."""
    import h5py
    import numpy as np
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    with h5py.File(state_path(dst), "r+") as f:
        edit(f.attrs, np)
    if legacy:
        state_strip(state_path(dst))
    else:
        state_reseal(state_path(dst))
    return dst


def warnings_of(p):
    return [l for l in p.stderr.splitlines() if l.startswith("medtune: warning:")]


def one_error(p, label, *needles):
    errors = [l for l in p.stderr.splitlines() if l.startswith("medtune: error:")]
    if p.returncode != 1 or len(errors) != 1:
        fail(f"{label}: exit {p.returncode}, expected 1 with one error line:\n{p.stderr[-1500:]}")
    for n in needles:
        if n not in errors[0]:
            fail(f"{label}: the error does not name {n!r}: {errors[0]}")
    print(f"{label}: {errors[0]}")


def info(path, *extra):
    return subprocess.run([medtune(), "info", path, *extra], capture_output=True, text=True)


def main():
    import h5py
    version = project_version()
    work = work_dir("versions")
    conf, run_dir = finished_run(work, steps=2)
    with h5py.File(state_path(run_dir), "r") as f:
        got = (int(f.attrs["format_version"]), f.attrs["medtune_version"], int(f.attrs["threads"]))
    got = (got[0], got[1].decode() if isinstance(got[1], bytes) else got[1], got[2])
    if got != (3, version, 1):
        fail(f"state.h5 attributes (format_version, medtune_version, threads) = {got}, "
             f"expected (3, {version!r}, 1)")
    p = info(run_dir)
    if f"state format         3, written by medtune {version}" not in p.stdout or warnings_of(p):
        fail(f"medtune info does not show the format and version, or warns:\n{p.stdout}{p.stderr}")
    print(f"state.h5: format 3, medtune {version}, threads 1; shown by medtune info")

    newer = variant(run_dir, os.path.join(work, "newer"),
                    lambda a, np: a.__setitem__("format_version", np.int64(4)))
    one_error(info(newer), "info on format 4", "state format 4", "up to 3", version)
    one_error(train(conf, resume=True, out_dir=newer), "resume of format 4", "state format 4")

    v2 = variant(run_dir, os.path.join(work, "format2"),
                 lambda a, np: a.__setitem__("format_version", np.int64(2)), legacy=True)
    p = info(v2)
    if p.returncode != 0 or "state format         2" not in p.stdout or len(warnings_of(p)) != 1 \
            or "no checksum" not in warnings_of(p)[0]:
        fail(f"info on format 2: exit {p.returncode}, expected 0 and one warning about the "
             f"missing checksum:\n{p.stdout}{p.stderr}")
    p = train(conf, resume=True, out_dir=v2)
    if p.returncode != 0 or len(warnings_of(p)) != 1 or "no checksum" not in warnings_of(p)[0]:
        fail(f"resume of format 2: exit {p.returncode}, expected 0 and one warning about the "
             f"missing checksum:\n{p.stderr[-1500:]}")
    print(f"format 2 (no checksum): info and resume, {warnings_of(p)[0]}")

    def to_v1(a, np):
        a["format_version"] = np.int64(1)
        del a["medtune_version"]
        del a["threads"]
    old = variant(run_dir, os.path.join(work, "format1"), to_v1, legacy=True)
    p = info(old)
    if p.returncode != 0 or "state format         1, written by medtune unknown" not in p.stdout:
        fail(f"info on format 1: exit {p.returncode}:\n{p.stdout}{p.stderr}")
    print("info on format 1: described")
    one_error(train(conf, resume=True, out_dir=old), "resume of format 1", "state format 1",
              "sample", "init_adapter")

    other = variant(run_dir, os.path.join(work, "other_version"),
                    lambda a, np: a.__setitem__("medtune_version", np.bytes_(b"0.0.1")))
    p = train(conf, resume=True, out_dir=other)
    warnings = [l for l in p.stderr.splitlines() if l.startswith("medtune: warning:")]
    if p.returncode != 0 or len(warnings) != 1 or "0.0.1" not in warnings[0] \
            or version not in warnings[0]:
        fail(f"resume of another version: exit {p.returncode}, expected 0 and one warning "
             f"naming 0.0.1 and {version}:\n{p.stderr[-1500:]}")
    print(f"resume of another version: {warnings[0]}")
    print("PASS")


if __name__ == "__main__":
    main()
