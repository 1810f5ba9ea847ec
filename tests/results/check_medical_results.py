"""bench/medical_results.sh --smoke end to end on SmolLM2-135M-Instruct and ../shared/data:
every stage runs, and the markdown table it prints has the structure docs/results.md relies on,
with numbers that are the raw outputs' (the eval JSON, the suite's results.json, the train
runs' metrics) rather than anything the table script made up. Also: a missing binary is one
line and exit 1. Skips when the model or ../shared is absent."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import testlib  # noqa: E402

STAGES = [
    ("1 DAPT", "prep_pubmed"), ("1 DAPT", "prep_general"), ("1 DAPT", "ppl_pubmed_base"),
    ("1 DAPT", "ppl_general_base"), ("1 DAPT", "train_dapt_noreplay"),
    ("1 DAPT", "ppl_pubmed_dapt_noreplay"), ("1 DAPT", "ppl_general_dapt_noreplay"),
    ("1 DAPT", "train_dapt_replay"), ("1 DAPT", "ppl_pubmed_dapt_replay"),
    ("1 DAPT", "ppl_general_dapt_replay"), ("2 SFT", "prep_chat"), ("2 SFT", "answer_loss_base"),
    ("2 SFT", "train_sft"), ("2 SFT", "answer_loss_sft"), ("2 SFT", "suite"),
]
TASKS = 9  # configs/medical_suite.json
LIMIT = 2  # the smoke run's items per task


def cells(line):
    """The cells of a markdown table line (escaped pipes stay inside their cell)."""
    parts = re.split(r"(?<!\\)\|", line.strip())
    return [c.strip() for c in parts[1:-1]]


def table_after(lines, header):
    """The rows (as cell lists) of the table whose header line starts with `header`."""
    for i, line in enumerate(lines):
        if line.startswith(header):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(cells(row))
            return cells(line), rows
    testlib.fail(f"no table with header {header!r} in the output")


def load(path):
    with open(path) as f:
        return json.load(f)


def main():
    src = testlib.env("MEDTUNE_SOURCE", os.path.join(testlib.TESTS, ".."))
    if not os.path.isdir(os.path.join(src, "../shared/data/pubmed_xml")):
        testlib.skip(f"{os.path.abspath(os.path.join(src, '../shared/data'))} is absent "
                     "(the script reads ../shared/data from the repository root)")
    model = testlib.smollm2()
    if model is None:
        testlib.skip("SmolLM2-135M-Instruct.Q4_1.gguf is absent (tools/fetch_smollm2.sh)")
    script = os.path.join(src, "bench", "medical_results.sh")
    work = testlib.work_dir("results", "medical_results")
    build = os.path.dirname(os.path.abspath(testlib.medtune_bin()))
    env = dict(os.environ, MODEL=model, OUT=os.path.join(work, "out"),
               PREF_RESULTS=os.path.join(work, "no_pref_results"),
               PYTHON=sys.executable)

    # A build directory without medtune: one line naming it, exit 1, nothing run.
    r = subprocess.run(["bash", script, "--smoke", work], cwd=src, env=env,
                       capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    if r.returncode != 1 or len(lines) != 1 or "no medtune binary" not in lines[0]:
        testlib.fail(f"missing binary: exit {r.returncode}, stderr {r.stderr!r}")

    r = subprocess.run(["bash", script, "--smoke", build], cwd=src, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        testlib.fail(f"--smoke exited {r.returncode}: {r.stderr[-3000:]}")
    out = env["OUT"]
    lines = r.stdout.splitlines()
    with open(os.path.join(out, "table.md")) as f:
        if f.read() != r.stdout:
            testlib.fail("table.md differs from the printed table")

    # The per-command table: every stage, in order, with its command and wall time; the DPO
    # row says it was not run (no preference job in PREF_RESULTS).
    header, rows = table_after(lines, "| row | stage |")
    if header != ["row", "stage", "command", "wall s", "load", "numbers"]:
        testlib.fail(f"header {header}")
    if [(c[0], c[1]) for c in rows[:len(STAGES)]] != STAGES:
        testlib.fail(f"stages {[(c[0], c[1]) for c in rows]}")
    for c in rows[:len(STAGES)]:
        if len(c) != 6 or not c[2].startswith("`") or float(c[3]) <= 0 or not c[5]:
            testlib.fail(f"row {c}")
        float(c[4])
    if len(rows) != len(STAGES) + 1 or not rows[-1][1].startswith("preference_job") or \
            "not run" not in rows[-1][2]:
        testlib.fail(f"DPO row {rows[len(STAGES):]}")
    numbers = {c[1]: c[5] for c in rows}

    # Each perplexity the table shows is the one medtune eval printed in its JSON.
    for name, text in numbers.items():
        if name.startswith("ppl_") or name.startswith("answer_loss_"):
            d = load(os.path.join(out, name + ".out"))
            if f"ppl {d['ppl']:.2f}" not in text or f"loss {d['loss']:.4f}" not in text:
                testlib.fail(f"{name}: table {text!r}, JSON ppl {d['ppl']} loss {d['loss']}")
    # Trainings ran their steps; the replay run drew from the general shards, the other not.
    for run in ("dapt_noreplay", "dapt_replay", "sft"):
        with open(os.path.join(out, run, "metrics.jsonl")) as f:
            steps = [json.loads(x)["step"] for x in f if '"loss"' in x and '"tok_per_s"' in x]
        if steps != [1, 2] or not numbers["train_" + run].startswith("2 of 2 steps"):
            testlib.fail(f"{run}: steps {steps}, table {numbers['train_' + run]!r}")
    for run, ratio in (("dapt_noreplay", 0), ("dapt_replay", 0.1)):
        cfg = load(os.path.join(out, run, "config.json"))
        if cfg["data"]["replay_ratio"] != ratio:
            testlib.fail(f"{run}: replay_ratio {cfg['data']['replay_ratio']}")

    # Row 1's summary: both runs, before/after as in the eval outputs, change in percent.
    _, r1 = table_after(lines, "| run | PubMed before |")
    if [c[0] for c in r1] != ["no replay", "10% general replay"]:
        testlib.fail(f"row 1 runs {r1}")
    for c, run in zip(r1, ("dapt_noreplay", "dapt_replay")):
        before = load(os.path.join(out, "ppl_pubmed_base.out"))["ppl"]
        after = load(os.path.join(out, f"ppl_pubmed_{run}.out"))["ppl"]
        want = [f"{before:.2f}", f"{after:.2f}", f"{100 * (after - before) / before:+.1f}%"]
        if c[1:4] != want:
            testlib.fail(f"row 1 {run}: {c[1:4]} != {want}")

    # Row 2: the suite table, each task's n, accuracies and McNemar p from results.json.
    _, r2 = table_after(lines, "| task | n |")
    res = load(os.path.join(out, "suite", "results.json"))
    if len(r2) != TASKS + 1 or len(res["tasks"]) != TASKS:
        testlib.fail(f"suite rows {len(r2)}, tasks {len(res['tasks'])}")
    for c, t in zip(r2, res["tasks"]):
        if c[0] != t["task"] or int(c[1]) != LIMIT or t["n"] != LIMIT or \
                not c[2].startswith(f"{t['model']['acc']:.3f} [") or \
                not c[3].startswith(f"{t['compared']['acc']:.3f} [") or \
                not 0 <= float(c[6]) <= 1 or float(c[6]) != float(f"{t['mcnemar']['p']:.3g}"):
            testlib.fail(f"suite row {c} against {t}")

    # Row 4: one projection per training run, the 7B above the 1B above the measured base.
    _, r4 = table_after(lines, "| recipe | steps |")
    if [c[0] for c in r4] != ["dapt_noreplay", "dapt_replay", "sft"]:
        testlib.fail(f"projections {r4}")
    for c in r4:
        at_bench, one_b, seven_b = float(c[4]), float(c[5]), float(c[6])
        if not at_bench <= one_b <= seven_b or seven_b <= 0:
            testlib.fail(f"projection {c}")
    with open(os.path.join(out, "general_source.txt")) as f:
        print("general corpus:", f.read().strip())
    print(f"OK: {len(STAGES)} stages, {TASKS} suite tasks, table structure and numbers")


if __name__ == "__main__":
    main()
