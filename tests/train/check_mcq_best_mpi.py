"""eval_mcq, best checkpoint and early stopping under mpirun -np 2: the same metrics (losses,
val losses, MCQ accuracies), early-stop step, checkpoints/best and adapter bytes as one
process doing the same global batch (grad_accum 2 on one process = 2 ranks x grad_accum 1).
Rank 0 alone scores the MCQ sets and sends the accuracies (docs/training.md)."""
import filecmp
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "mpi"))
from check_mcq_best import pointer, setup, train  # noqa: E402
from mpi_lib import lsan_env, mpirun_args, require_mpi_build  # noqa: E402
from train_lib import fail, metrics, work_dir  # noqa: E402


def main():
    require_mpi_build()
    os.environ.update(lsan_env())
    work = work_dir("mcq_best_mpi")
    model, shards, paths = setup(work)
    extra = {"best.metric": "mcq:medqa", "best.patience": 2, "save_every": 0, "keep_last": 1}
    one, _ = train(work, "one", model, shards, paths, dict(extra, **{"batch.grad_accum": 2}), 60)
    two, p = train(work, "two", model, shards, paths, dict(extra, **{"batch.grad_accum": 1}), 60,
                   launch=mpirun_args(2))

    def strip(rows):
        drop = ("elapsed_s", "tok_per_s", "comm_ms", "comm_mb", "world_size")
        return [{k: v for k, v in r.items() if k not in drop} for r in rows]
    a, b = strip(metrics(one)), strip(metrics(two))
    if a != b:
        diff = [(x, y) for x, y in zip(a, b) if x != y][:2]
        fail(f"2 ranks: metrics.jsonl differs from one process: {diff or (len(a), len(b))}")
    if not any("mcq/medqa/acc" in r for r in b):
        fail("2 ranks: no mcq/medqa/acc in metrics.jsonl")
    if pointer(one, "best") != pointer(two, "best") or pointer(one, "latest") != pointer(two, "latest"):
        fail(f"2 ranks: best/latest {pointer(two, 'best')}/{pointer(two, 'latest')}, one process "
             f"{pointer(one, 'best')}/{pointer(one, 'latest')}")
    for d in (os.path.join("checkpoints", pointer(one, "best"), "adapter"), "adapter"):
        f = os.path.join(d, "adapter_model.safetensors")
        if not filecmp.cmp(os.path.join(one, f), os.path.join(two, f), shallow=False):
            fail(f"2 ranks: {f} differs from one process")
    if "early stop" not in p.stderr:
        fail(f"2 ranks: no early stop message:\n{p.stderr[-1500:]}")
    print(f"ok: 2 ranks: {len(b)} metrics lines (MCQ accuracies included), early stop at "
          f"{pointer(two, 'latest')}, best {pointer(two, 'best')} and adapters identical to one "
          f"process")


if __name__ == "__main__":
    main()
