#!/usr/bin/env python3
"""kill -9 during the writes of `medtune prep`, `export` or `merge` (argv[1]) never leaves
output that a later command accepts as incomplete or wrong.

Each command is first run under strace to list its file-changing syscalls (write, fsync,
rename, unlink, mkdir, ...); then it is run again and again, killed with SIGKILL just before
one of them: every rename, unlink and rmdir, and a seeded sample of the others (the same points
on every machine), KILLS in all when there are fewer renames. After each
kill:
  - the consumer of the output (`train` on prep's shards, `eval --adapter` on a PEFT export,
    `info` on a merged model) either refuses it with one `medtune: error: <file>: ...` line,
    or accepts it, and then the output is byte for byte the earlier output it replaced or the
    output of an uninterrupted run;
  - the same command run again succeeds and leaves exactly the output of an uninterrupted run
    (no temporary file or directory left beside or inside it).
Each scenario is run twice: into a new path, and over an earlier, different output. prep and
export also refuse, with one line and touching nothing, to replace a directory holding files
they did not write."""
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crash_lib import (diff, fail, medtune_bin, need_strace, one_error_line, pick,  # noqa: E402
                       prep_config, run, run_killed, snapshot, tiny_model, trace_writes,
                       traced_env, train_config, work_dir)

KILLS = 24  # per scenario (all of them when there are fewer write syscalls)


def medtune(args):
    return subprocess.run([medtune_bin()] + args, capture_output=True, text=True)


def check_scenario(label, work, args, out, before, want, consume, rng, rerun_refuses=False):
    """Kills `medtune args` (which writes `out`) at KILLS points. `before`: the snapshot of
    `out` to restore before each run (None: absent); `want`: the uninterrupted output."""
    aside = out + ".before"

    def reset():
        for p in (out, out + ".partial"):
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.unlink(p)
        for name in os.listdir(os.path.dirname(out)):  # temporaries of single-file outputs
            if name.startswith(os.path.basename(out) + ".tmp."):
                os.unlink(os.path.join(os.path.dirname(out), name))
        if before is not None:
            if os.path.isdir(aside):
                shutil.copytree(aside, out)
            else:
                shutil.copyfile(aside, out)

    reset()
    events = trace_writes(args, log_dir=work)
    if diff(snapshot(out), want):
        fail(f"{label}: the uninterrupted run under strace gave other output: "
             f"{diff(snapshot(out), want)}")
    kills = refused = accepted_old = accepted_new = 0
    for i in pick(events, KILLS, rng):
        reset()
        if not run_killed(args, events[i], cwd=work):
            fail(f"{label}: the kill before {events[i]} (point {i}) did not happen")
        kills += 1
        got = snapshot(out)
        p = consume()
        if p.returncode == 0:
            if not diff(got, want):
                accepted_new += 1
            elif before is not None and not diff(got, before):
                accepted_old += 1
            else:
                fail(f"{label}: killed before {events[i][0]} #{events[i][1]} (point {i} of "
                     f"{len(events)}): the consumer accepted an output that is neither the old "
                     f"nor the new one ({diff(got, want)})")
        else:
            why = one_error_line(p)
            if why:
                fail(f"{label}: killed before {events[i]}: the consumer did not refuse with "
                     f"one error line: {why}")
            refused += 1
        q = medtune(args)
        if rerun_refuses and not diff(got, want):
            if one_error_line(q):
                fail(f"{label}: after a kill that left the complete output, the re-run neither "
                     f"succeeded nor refused with one line: {one_error_line(q)}")
            continue
        if q.returncode != 0:
            fail(f"{label}: killed before {events[i]}: the re-run failed: {q.stderr[-800:]}")
        d = diff(snapshot(out), want)
        if d or os.path.exists(out + ".partial"):
            fail(f"{label}: killed before {events[i]} (point {i}): after the re-run the output "
                 f"is not the uninterrupted one: {d or out + '.partial is left'}")
    print(f"{label}: {len(events)} write syscalls; {kills} kills: the consumer refused "
          f"{refused}, accepted the old output {accepted_old} and the complete new output "
          f"{accepted_new} times; every re-run gave the uninterrupted output")
    reset()


def save_before(out, snap_src):
    """Keeps a pristine copy of the earlier output at out + '.before' and returns its snapshot."""
    aside = out + ".before"
    if os.path.isdir(snap_src):
        shutil.copytree(snap_src, aside)
    else:
        shutil.copyfile(snap_src, aside)
    return snapshot(aside)


def refuses_foreign_dir(label, work, args_for, needle):
    """Publishing replaces the whole output directory, so one holding files the command did not
    write is refused with one error line before anything is written, and stays as it was."""
    d = os.path.join(work, "foreign")
    os.makedirs(d)
    with open(os.path.join(d, "notes.txt"), "w") as f:
        f.write("not medtune's\n")
    before = snapshot(d)
    p = medtune(args_for(d))
    why = one_error_line(p)
    if why or d not in p.stderr or needle not in p.stderr:
        fail(f"{label} into a directory with other files: {why or p.stderr}")
    if diff(snapshot(d), before) or os.path.exists(d + ".partial"):
        fail(f"{label} into a directory with other files changed it or left {d}.partial")
    shutil.rmtree(d)
    print(f"{label} into a directory with other files: refused, untouched: {p.stderr.strip()}")


def prep_case(work, model, rng):
    ref = os.path.join(work, "ref")
    conf = prep_config(work, "prep", model, ref, shard_tokens=16384)
    run(["prep", conf])
    want = snapshot(ref)
    old = os.path.join(work, "old")
    run(["prep", prep_config(work, "prep_old", model, old, val_fraction=0.3)])
    out = os.path.join(work, "out")
    args = ["prep", conf, "--set", f"out_dir={out}"]
    tconf = train_config(work, "consumer", model, out, os.path.join(work, "consumer_run"),
                         steps=1, save_every=0, eval_every=0)

    def consume():
        shutil.rmtree(os.path.join(work, "consumer_run"), ignore_errors=True)
        return medtune(["train", tconf])

    check_scenario("prep into a new directory", work, args, out, None, want, consume, rng)
    before = save_before(out, old)
    check_scenario("prep over an earlier shard directory", work, args, out, before, want,
                   consume, rng)
    refuses_foreign_dir("prep", work, lambda d: ["prep", conf, "--set", f"out_dir={d}"],
                        "notes.txt")
    # A file system without RENAME_EXCHANGE (strace makes renameat2 fail with EINVAL): the
    # fallback's two renames give the same output and leave nothing beside it.
    # (check_scenario left the earlier output in `out`.)
    log = os.path.join(work, "renameat2.log")
    p = subprocess.run(["strace", "-f", "-qq", "-o", log, "-e", "trace=renameat2",
                        "-e", "inject=renameat2:error=EINVAL", medtune_bin()] + args,
                       capture_output=True, text=True, env=traced_env())
    if "RENAME_EXCHANGE) = -1 EINVAL" not in open(log).read():
        fail("prep over an earlier output did not try RENAME_EXCHANGE")
    if p.returncode != 0 or diff(snapshot(out), want):
        fail(f"prep over an earlier output without RENAME_EXCHANGE: exit {p.returncode}, "
             f"{diff(snapshot(out), want)} {p.stderr[-500:]}")
    left = [n for n in os.listdir(work) if n.startswith("out.")]
    if left != ["out.before"]:
        fail(f"prep without RENAME_EXCHANGE left {left} beside the output")
    print("prep over an earlier output without RENAME_EXCHANGE: the uninterrupted output")


def export_case(work, model, rng):
    runs = []
    for name, alpha in (("run_a", 8), ("run_b", 16)):
        conf = train_config(work, name, model, os.path.join(work, "shards"),
                            os.path.join(work, name), steps=2, lora={"r": 4, "alpha": alpha})
        run(["train", conf])
        runs.append(os.path.join(work, name, "checkpoints/step_00000002"))
    src_old, src = runs
    refuses_foreign_dir("export", work, lambda d: ["export", src, d],
                        "not a PEFT adapter directory")
    for fmt, suffix in (("peft", ""), ("gguf", ".gguf")):
        ref, old = os.path.join(work, "ref_" + fmt + suffix), os.path.join(work, "old" + suffix)
        run(["export", src, ref, "--format", fmt])
        run(["export", src_old, old, "--format", fmt])
        want = snapshot(ref)
        out = os.path.join(work, "out_" + fmt + suffix)
        args = ["export", src, out, "--format", fmt]
        if fmt == "peft":
            def consume():
                return medtune(["eval", model, "--adapter", out, "--shards",
                                os.path.join(work, "shards")])
        else:
            # medtune reads no GGUF adapter: the file is compared with the references.
            def consume():
                ok = os.path.isfile(out)
                return subprocess.CompletedProcess([], 0 if ok else 1, "", "" if ok else
                                                   f"medtune: error: {out}: absent")
        check_scenario(f"export {fmt} to a new path", work, args, out, None, want, consume, rng)
        before = save_before(out, old)
        check_scenario(f"export {fmt} over an earlier export", work, args, out, before, want,
                       consume, rng)


def merge_case(work, model, rng):
    conf = train_config(work, "run", model, os.path.join(work, "shards"),
                        os.path.join(work, "run"), steps=2)
    run(["train", conf])
    adapter = os.path.join(work, "run/adapter")
    ref = os.path.join(work, "ref")
    run(["merge", model, adapter, ref])
    out = os.path.join(work, "out")
    # merge refuses to write into an existing non-empty directory, so only new paths.
    check_scenario("merge into a new directory", work, ["merge", model, adapter, out], out, None,
                   snapshot(ref), lambda: medtune(["info", out]), rng, rerun_refuses=True)


def main():
    cases = {"prep": prep_case, "export": export_case, "merge": merge_case}
    if len(sys.argv) != 2 or sys.argv[1] not in cases:
        fail(f"usage: {sys.argv[0]} {'|'.join(cases)}")
    need_strace()
    work = work_dir("kill9_" + sys.argv[1])
    model = tiny_model(work)
    if sys.argv[1] != "prep":
        run(["prep", prep_config(work, "shards", model, os.path.join(work, "shards"))])
    rng = random.Random(int(os.environ.get("MEDTUNE_TEST_SEED", "1")))
    cases[sys.argv[1]](work, model, rng)
    print("PASS")


if __name__ == "__main__":
    main()
