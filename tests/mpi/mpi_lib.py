"""Shared helpers of the MPI tests: launching medtune under mpirun, the run configs, and the
training data: a random-weight model with the quickstart sample (what a fresh clone has), and
tinystories-656k with the PubMed sample when ../shared is there."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../train"))
from testlib import fail, medtune_bin, skip  # noqa: E402,F401
from testlib import work_dir as _work_dir  # noqa: E402
from train_lib import compare, prep_pubmed, steps_done, write_json  # noqa: E402,F401
from fresh_lib import fresh_training_data, shared_or_none  # noqa: E402

# Open MPI's mpirun forwards SIGTERM to the ranks and SIGKILLs them this many seconds later
# (odls_base_sigkill_timeout, default 1): enough here for a step and a checkpoint of the tiny
# model (docs/training.md). mpirun also waits twice as long before it reports a failed job, so
# only the signal tests set it.
SIGNAL_GRACE_S = 3


def work_dir(name):
    return _work_dir("mpi_tests", name)


def mpirun_args(n, grace=None):
    """The CI launch line: root is allowed, more ranks than cores, shared memory only."""
    exe = shutil.which("mpirun")
    if not exe:
        skip("mpirun is absent (Debian: openmpi-bin)")
    extra = ["--mca", "odls_base_sigkill_timeout", str(grace)] if grace else []
    return [exe, "--allow-run-as-root", "--oversubscribe", "--mca", "btl", "self,vader"] + \
        extra + ["-np", str(n)]


def lsan_env():
    """Open MPI's own allocations outlive MPI_Finalize; the sanitizer build must not count
    them as medtune's leaks (tests/mpi/lsan.supp)."""
    e = dict(os.environ)
    supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lsan.supp")
    e["LSAN_OPTIONS"] = f"suppressions={supp}:print_suppressions=0:fast_unwind_on_malloc=0"
    # Keep MPI's plugins loaded to the end, so leak reports name their library.
    e["OMPI_MCA_mca_base_component_disable_dlclose"] = "1"
    e["PMIX_MCA_mca_base_component_disable_dlclose"] = "1"
    return e


def train_cmd(conf, ranks, resume=False, sets=(), grace=None):
    """The command of a training run on `ranks` processes (0: plain, without mpirun)."""
    args = [medtune_bin(), "train", conf] + (["--resume"] if resume else [])
    for s in sets:
        args += ["--set", s]
    return (mpirun_args(ranks, grace) if ranks else []) + args


def train(conf, ranks, resume=False, sets=(), expect=0):
    p = subprocess.run(train_cmd(conf, ranks, resume, sets), capture_output=True, text=True,
                       env=lsan_env(), timeout=900)
    if expect is not None and p.returncode != expect:
        fail(f"{' '.join(train_cmd(conf, ranks, resume, sets))}: exit {p.returncode}, expected "
             f"{expect}\nstdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-3000:]}")
    return p


def require_mpi_build():
    """Skips when medtune was built without MPI (it refuses to run as several ranks)."""
    p = subprocess.run(mpirun_args(2) + [medtune_bin(), "train", "/nonexistent/config.json"],
                       capture_output=True, text=True, env=lsan_env(), timeout=120)
    if "built without MPI" in p.stderr:
        skip("medtune was built without MPI (MEDTUNE_MPI=OFF)")
    errors = [l for l in p.stderr.splitlines() if l.startswith("medtune: error:")]
    if len(errors) != 1 or "/nonexistent/config.json" not in errors[0]:
        fail(f"a bad config under mpirun -np 2 must give one error line, got:\n{p.stderr}")


def fresh_data(work, **changes):
    """(model, train shards, replay shards) of a fresh clone: fresh_lib.fresh_training_data in
    work/fresh."""
    return fresh_training_data(os.path.join(work, "fresh"), **changes)


def shared_data(work):
    """(model, train shards, replay shards): tinystories-656k and the PubMed sample (replay from
    the same shards), or None without ../shared."""
    shared = shared_or_none()
    if not shared:
        return None
    model = os.path.join(shared, "models/tinystories-656k")
    shards = prep_pubmed(shared, os.path.join(work, "pubmed"), model)
    return model, shards, shards


def config(work, name, data, steps, grad_accum, r=4, save_every=5, eval_every=5):
    """Tiny model, shuffle, LoRA dropout, replay, evaluation: every source of order or
    randomness that ranks must share. data: (model, train shards, replay shards)."""
    model, shards, replay = data
    path = os.path.join(work, name + ".json")
    write_json(path, {"model": model, "data": {"train": shards, "replay": replay,
                                               "replay_ratio": 0.25},
                      "lora": {"r": r, "alpha": 2 * r, "dropout": 0.1},
                      "optim": {"lr": 1e-3, "weight_decay": 0.01},
                      "schedule": {"warmup_steps": 4, "decay": "cosine", "min_lr_ratio": 0.1},
                      "batch": {"micro_batch": 2, "seq_len": 64, "grad_accum": grad_accum},
                      "steps": steps, "shuffle": True, "seed": 3, "threads": 1,
                      "eval_every": eval_every, "eval_batches": 3, "save_every": save_every,
                      "keep_last": 2, "out_dir": os.path.join(work, name)})
    return path


def metric_rows(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]
