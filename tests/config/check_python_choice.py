#!/usr/bin/env python3
"""The tests' Python is chosen when a test runs, not cached when the build is configured.

A throwaway build directory is configured the way a new user does it before
tools/bootstrap.sh: no -DMEDTUNE_PYTHON, no virtual environment yet, and a `python3` on PATH
without torch (here a stand-in that hides torch, so the check does not depend on what this
machine's python3 has). A driver that imports torch must then be skipped with that reason, not
fail with a traceback. Then the virtual environment appears (a python that records each start
and runs the real one) and, without configuring again, the tests must run under it."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import fail, skip, source_dir, work_dir  # noqa: E402


def ctest(build, name, env):
    p = subprocess.run(["ctest", "--test-dir", build, "-R", f"^{name}$", "-V"],
                       capture_output=True, text=True, env=env)
    return p.returncode, p.stdout + p.stderr


def main():
    if not shutil.which("cmake") or not shutil.which("ctest"):
        skip("cmake/ctest are not on PATH")
    work = work_dir("config", "python_choice")
    build, venv, bindir = (os.path.join(work, d) for d in ("build", "venv", "bin"))
    real = sys.executable
    # python3 without torch: torch/ on its path raises what a missing module raises.
    hide = os.path.join(work, "hide")
    os.makedirs(os.path.join(hide, "torch"))
    with open(os.path.join(hide, "torch", "__init__.py"), "w") as f:
        f.write("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    os.makedirs(bindir)
    with open(os.path.join(bindir, "python3"), "w") as f:
        f.write(f"#!/bin/sh\nPYTHONPATH=\"$PYTHONPATH:{hide}\" exec '{real}' \"$@\"\n")
    os.chmod(os.path.join(bindir, "python3"), 0o755)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))

    p = subprocess.run(["cmake", "-S", source_dir(), "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                        f"-DMEDTUNE_VENV={venv}", f"-DMEDTUNE_SHARED={work}/no-shared"],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        fail(f"configuring {build} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")

    # Before the environment exists: python3, which lacks torch -> a skip that says so.
    rc, out = ctest(build, "load_ref_hf_f16", env)
    if "Skipped" not in out or "SKIP: Python module 'torch' is missing" not in out:
        fail(f"without torch, load_ref_hf_f16 is not skipped with the reason (ctest exit {rc}):\n"
             f"{out[-3000:]}")
    print("ok: before .venv exists, a driver needing torch is skipped: missing module named")

    # The environment appears after configuring; the next test run must use it.
    log = os.path.join(work, "venv-starts.log")
    os.makedirs(os.path.join(venv, "bin"))
    with open(os.path.join(venv, "bin", "python"), "w") as f:
        f.write(f"#!/bin/sh\necho \"$@\" >> '{log}'\nexec '{real}' \"$@\"\n")
    os.chmod(os.path.join(venv, "bin", "python"), 0o755)
    rc, out = ctest(build, "layout", env)
    if rc != 0:
        fail(f"layout in {build} failed under the new venv:\n{out[-3000:]}")
    if not os.path.exists(log) or "check_layout.py" not in open(log).read():
        fail(f"the venv created after configuring was not used by the tests "
             f"({log} {'lacks check_layout.py' if os.path.exists(log) else 'was never written'})")
    print("ok: a .venv made after configuring is used by the next test run, without reconfiguring")
    shutil.rmtree(work, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
