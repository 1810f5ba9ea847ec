"""Helpers shared by the Python test drivers (the counterpart of tests/testlib.h): skipping,
failing, the paths ctest passes in the environment, and fresh working directories."""
import os
import subprocess
import sys

SKIP = 77
TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(TESTS, "twin"))


def skip(msg):
    """Prints SKIP and exits 77: ctest reports the test as skipped."""
    print(f"SKIP: {msg}")
    sys.exit(SKIP)


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def env(name, default=None):
    v = os.environ.get(name)
    return v if v else default


def shared_dir():
    """$MEDTUNE_SHARED (or ../shared beside the checkout); skips when absent."""
    d = env("MEDTUNE_SHARED", os.path.join(TESTS, "../../shared"))
    if not os.path.isdir(d):
        skip(f"shared folder {d} is absent")
    return os.path.abspath(d)


def medtune_bin():
    return env("MEDTUNE_BIN", "medtune")


def smollm2():
    """The real SmolLM2-135M-Instruct GGUF fetched by tools/bootstrap.sh, or None."""
    p = os.path.join(env("MEDTUNE_CACHE", os.path.join(TESTS, "../.cache")),
                     "SmolLM2-135M-Instruct.Q4_1.gguf")
    return p if os.path.exists(p) else None


def work_dir(area, name):
    """An empty directory $MEDTUNE_TEST_BIN/<area>/<name> for one test."""
    d = os.path.join(env("MEDTUNE_TEST_BIN", "/tmp"), area, name)
    subprocess.run(["rm", "-rf", d], check=True)
    os.makedirs(d)
    return d


def run(args, expect=0, **kw):
    """Runs medtune with `args`; fails the test unless it exits with `expect` (None: any)."""
    p = subprocess.run([medtune_bin()] + args, capture_output=True, text=True, **kw)
    if expect is not None and p.returncode != expect:
        fail(f"medtune {' '.join(args)} exited {p.returncode}, expected {expect}\n"
             f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}")
    return p


def expect_error(args, *needles, only=True, env=None):
    """Runs medtune, which must exit 1 with exactly one `medtune: error:` line naming every
    needle. With only=True that line must be all of stderr; otherwise progress lines printed
    before the failure are allowed. Returns the error line."""
    p = run(args, expect=1, env=env)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("medtune: error:")]
    if len(errors) != 1 or (only and len(lines) != 1):
        fail(f"medtune {' '.join(args)}: expected one error line, got:\n{p.stderr}")
    for n in needles:
        if n not in errors[0]:
            fail(f"medtune {' '.join(args)}: error does not name {n!r}: {errors[0]}")
    print(f"ok: {errors[0]}")
    return errors[0]
