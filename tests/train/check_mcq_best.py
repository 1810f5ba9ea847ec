"""MCQ evaluation during training, best checkpoint, early stopping and export --best
(docs/training.md, "MCQ evaluation and the best checkpoint"), on a fresh-clone random-weight
model with benchmark files built from the quickstart sample.

- every evaluation line of metrics.jsonl has mcq/<name>/acc and acc_norm equal to what
  `medtune eval --mcq` (an independent path through the CLI; eval_mcq_twin proves its scoring
  against the PyTorch twin) gives for the checkpoint of that step;
- checkpoints/best names the step the test computes from metrics.jsonl (val_loss: lowest,
  mcq:<name>: highest acc, first on ties), and keep_last=1 keeps it;
- best.patience stops the run at the step the rule gives;
- a run stopped part-way and resumed writes the same metrics, best and adapter bytes;
- `medtune export RUN --best` writes the bytes of exporting that step's checkpoint, and
  `medtune info RUN --json` reports the best step and score;
- `medtune report` draws each set's acc and acc_norm by step (chart-mcq-<name>)."""
import filecmp
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "eval"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "report"))
from eval_lib import sample_benchmarks  # noqa: E402
from fresh_lib import fresh_model  # noqa: E402
from report_lib import check_series, parse_page  # noqa: E402
from train_lib import fail, medtune, metrics, run, work_dir, write_json  # noqa: E402
from testlib import expect_error  # noqa: E402

MEDQA_LIMIT = 8


def answer_c_benchmark(paths, work):
    """The sample MedQA items with the gold answer moved to C, and training text that holds
    each item's prompt followed by " C": a random model's accuracy on the file (its preference
    among " A".." D") then moves as training goes, so best and patience have something to do."""
    items = [json.loads(line) for line in open(paths["medqa"])]
    prompts = []
    with open(os.path.join(work, "medqa_c.jsonl"), "w") as f:
        for it in items:
            opts = [v for k, v in sorted(it["options"].items()) if k != it["answer_idx"]]
            opts.insert(2, it["options"][it["answer_idx"]])
            f.write(json.dumps(dict(it, options=dict(zip("ABCD", opts)), answer_idx="C",
                                    answer=opts[2])) + "\n")
            prompts.append("Question: " + it["question"] + "\n" +
                           "".join(f"{k}. {v}\n" for k, v in zip("ABCD", opts)) + "Answer: C")
    with open(os.path.join(work, "answers.txt"), "w") as f:
        f.write("\n\n".join(prompts * 4) + "\n")
    return os.path.join(work, "medqa_c.jsonl"), os.path.join(work, "answers.txt")


def train(work, name, model, shards, paths, extra, steps, sets=(), launch=()):
    cfg = {"model": model, "data": {"train": shards},
           "lora": {"r": 4, "dropout": 0.0}, "optim": {"lr": 2e-2},
           "schedule": {"decay": "constant"},
           "batch": {"micro_batch": 4, "seq_len": 64}, "steps": steps, "eval_every": 2,
           "eval_batches": 2, "seed": 7, "threads": 1,
           "eval_mcq": [{"path": paths["medqa"], "format": "medqa", "limit": MEDQA_LIMIT,
                         "name": "medqa"},
                        {"path": paths["pubmedqa"], "limit": 6}],
           "out_dir": os.path.join(work, name)}
    for k, v in extra.items():
        node = cfg
        *groups, leaf = k.split(".")
        for g in groups:
            node = node.setdefault(g, {})
        node[leaf] = v
    path = os.path.join(work, name + ".json")
    write_json(path, cfg)
    args = ["train", path] + [a for s in sets for a in ("--set", s)]
    if not launch:
        return cfg["out_dir"], run(args)
    p = subprocess.run(list(launch) + [medtune()] + args, capture_output=True, text=True,
                       timeout=900)
    if p.returncode:
        fail(f"{' '.join(launch)} medtune {' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return cfg["out_dir"], p


def eval_rows(run_dir):
    return [r for r in metrics(run_dir) if "mcq/medqa/acc" in r]


def eval_cli(model, adapter, path, fmt, limit):
    p = run(["eval", model, "--adapter", adapter, "--mcq", path, "--format", fmt,
             "--limit", str(limit), "--json"])
    return json.loads(p.stdout)


def expected_best(rows, key, higher):
    """(best step, stop step or None) by the documented rule: candidates are evaluations of
    steps >= 1; an improvement is strictly better; patience counts evaluations since."""
    best = None
    for r in rows:
        if r["step"] == 0:
            continue
        v = r[key]
        if best is None or (v > best[1] if higher else v < best[1]):
            best = (r["step"], v)
    return best


def pointer(run_dir, which):
    return open(os.path.join(run_dir, "checkpoints", which)).read().strip()


def check_values_match_cli(model, run_dir, paths):
    rows = eval_rows(run_dir)
    steps = [r["step"] for r in rows]
    if steps != list(range(0, 13, 2)):
        fail(f"{run_dir}: evaluation steps {steps}, expected 0, 2, ..., 12")
    ckpts = os.path.join(run_dir, "checkpoints")
    for r in rows:
        if "mcq/pubmedqa_test_set/acc" not in r or "mcq/pubmedqa_test_set/acc_norm" not in r:
            fail(f"step {r['step']}: no mcq/pubmedqa_test_set/* (the file's stem) in {r}")
        if r["step"] == 0:
            continue  # no checkpoint at step 0: the adapter is the PEFT init (B = 0)
        adapter = os.path.join(ckpts, f"step_{r['step']:08d}", "adapter")
        for key, path, fmt, limit in (("medqa", paths["medqa"], "medqa", MEDQA_LIMIT),
                                      ("pubmedqa_test_set", paths["pubmedqa"], "pubmedqa", 6)):
            ref = eval_cli(model, adapter, path, fmt, limit)
            got = (r[f"mcq/{key}/acc"], r[f"mcq/{key}/acc_norm"])
            if got != (ref["accuracy"], ref["accuracy_norm"]):
                fail(f"step {r['step']}: {key} acc/acc_norm {got} in metrics.jsonl, medtune "
                     f"eval --mcq on {adapter} gives {(ref['accuracy'], ref['accuracy_norm'])}")
    print(f"ok: mcq/*/acc and acc_norm of steps {steps[1:]} equal medtune eval --mcq on each "
          f"step's checkpoint")


def setup(work):
    """The random-weight model, the benchmark files (MedQA with gold C) and the shards."""
    model = fresh_model(os.path.join(work, "model"))
    paths = sample_benchmarks(os.path.join(work, "bench"), n=12)
    paths["medqa"], text = answer_c_benchmark(paths, work)
    shards = os.path.join(work, "shards")
    write_json(os.path.join(work, "prep.json"),
               {"tokenizer": model, "inputs": [{"path": text, "format": "text"}],
                "val_fraction": 0.1, "out_dir": shards})
    run(["prep", os.path.join(work, "prep.json")])
    return model, shards, paths


def check_refusals(work, model, shards, paths):
    """Config mistakes and a bad MCQ file: one error line naming the key or file, exit 1,
    before any training."""
    base = {"model": model, "data": {"train": shards}, "steps": 2, "eval_every": 1,
            "eval_mcq": [{"path": paths["medqa"], "name": "medqa"}],
            "out_dir": os.path.join(work, "refused")}
    cases = [
        ({"best": {"metric": "mcq:nope"}}, ["best.metric", "mcq:nope"]),
        ({"best": {"metric": "accuracy"}}, ["best.metric", "accuracy"]),
        ({"best": {"patience": 3}}, ["best.patience"]),
        ({"best": {"metric": "val_loss"}, "eval_every": 0}, ["best.metric", "eval_every"]),
        ({"eval_mcq": [{"path": paths["medqa"]}, {"path": paths["medqa"]}]},
         ["eval_mcq[1]", "medqa_c"]),
        ({"eval_mcq": [{"path": paths["medqa"], "name": "a/b"}]}, ["eval_mcq[0].name"]),
        ({"eval_mcq": [{"file": paths["medqa"]}]}, ["eval_mcq[0]", "file"]),
        ({"eval_mcq": [{"path": paths["medqa"], "format": "medqa", "limit": -1}]},
         ["eval_mcq[0].limit"]),
        ({"eval_mcq": [{"path": paths["medqa"], "format": "medqa", "limit": 1e300}]},
         ["eval_mcq[0].limit"]),
        ({"eval_mcq": [{"path": paths["medqa"], "format": "usmle"}]},
         ["refused.json", "eval_mcq[0].format", "usmle"]),
        ({"eval_mcq": [{"path": os.path.join(work, "missing.jsonl"), "format": "medqa"}]},
         ["missing.jsonl"]),
    ]
    for change, needles in cases:
        path = os.path.join(work, "refused.json")
        write_json(path, dict(base, **change))
        expect_error(["train", path], *needles)
        if os.path.exists(base["out_dir"]):
            fail(f"{change}: refused, but {base['out_dir']} was created")


def main():
    work = work_dir("mcq_best")
    model, shards, paths = setup(work)
    check_refusals(work, model, shards, paths)

    # 1. val_loss, a checkpoint at every evaluation: values against the CLI, best = lowest.
    run_a, _ = train(work, "a", model, shards, paths,
                     {"best.metric": "val_loss", "save_every": 2, "keep_last": 100}, 12)
    check_values_match_cli(model, run_a, paths)
    rows = eval_rows(run_a)
    want = expected_best(rows, "val_loss", higher=False)
    if pointer(run_a, "best") != f"step_{want[0]:08d}":
        fail(f"checkpoints/best = {pointer(run_a, 'best')}, metrics.jsonl's lowest val_loss "
             f"is at step {want[0]} ({[(r['step'], r['val_loss']) for r in rows]})")
    print(f"ok: best.metric val_loss: checkpoints/best = step {want[0]}, the lowest val_loss")

    # 2. mcq:medqa with patience 2 and keep_last 1: early stop at the step the rule gives.
    extra = {"best.metric": "mcq:medqa", "best.patience": 2, "save_every": 0, "keep_last": 1}
    run_b, p = train(work, "b", model, shards, paths, extra, 60)
    rows = eval_rows(run_b)
    best, since, stop = None, 0, None
    for r in rows[1:]:
        v = r["mcq/medqa/acc"]
        if best is None or v > best[1]:
            best, since = (r["step"], v), 0
        else:
            since += 1
        if since >= 2:
            stop = r["step"]
            break
    last = max(r["step"] for r in metrics(run_b))
    if stop is None or last != stop:
        fail(f"patience 2: the rule stops at step {stop}, the run's last step is {last} "
             f"(medqa acc by step: {[(r['step'], r['mcq/medqa/acc']) for r in rows]})")
    if "early stop at step %d" % stop not in p.stderr:
        fail(f"no early-stop message for step {stop}:\n{p.stderr[-1500:]}")
    if pointer(run_b, "best") != f"step_{best[0]:08d}":
        fail(f"checkpoints/best = {pointer(run_b, 'best')}, the highest medqa acc (first on "
             f"ties) is at step {best[0]}")
    kept = sorted(d for d in os.listdir(os.path.join(run_b, "checkpoints")) if d.startswith("step_"))
    want_kept = sorted({f"step_{best[0]:08d}", f"step_{stop:08d}"})
    if kept != want_kept:
        fail(f"keep_last=1 kept {kept}, expected {want_kept} (the latest and the best)")
    print(f"ok: mcq:medqa, patience 2: stopped at step {stop} (of 60), best step {best[0]} "
          f"(acc {best[1]}), keep_last=1 kept {kept}")

    # 3. the same run stopped at step `half` and resumed: same metrics, best and bytes. `half`
    # is after the best step where there is one, so the resumed run depends on the restored
    # best score and patience counter.
    half = best[0] + 2 if best[0] + 2 < stop else best[0]
    run_c, _ = train(work, "c", model, shards, paths, extra, half)
    run(["train", os.path.join(work, "c.json"), "--resume", "--set", "steps=60"])

    def strip(rs):
        return [{k: v for k, v in r.items() if k not in ("elapsed_s", "tok_per_s")} for r in rs]
    if strip(metrics(run_c)) != strip(metrics(run_b)):
        fail(f"resumed at step {half}: metrics.jsonl differs from the uninterrupted run")
    if pointer(run_c, "best") != pointer(run_b, "best"):
        fail(f"resumed: best {pointer(run_c, 'best')}, uninterrupted {pointer(run_b, 'best')}")
    for d in ("checkpoints/" + pointer(run_b, "best") + "/adapter", "adapter"):
        for f in ("adapter_model.safetensors", "adapter_config.json"):
            if not filecmp.cmp(os.path.join(run_b, d, f), os.path.join(run_c, d, f),
                               shallow=False):
                fail(f"resumed: {d}/{f} differs from the uninterrupted run")
    info_b = json.loads(run(["info", run_b, "--json"]).stdout)
    info_c = json.loads(run(["info", run_c, "--json"]).stdout)
    if info_b.get("best") != info_c.get("best") or info_b.get("best", {}).get("step") != best[0] \
            or info_b["best"]["score"] != best[1] or info_b["best"]["metric"] != "mcq:medqa":
        fail(f"info --json best: uninterrupted {info_b.get('best')}, resumed "
             f"{info_c.get('best')}, expected step {best[0]} score {best[1]}")
    print(f"ok: stopped at step {half} and resumed: metrics, checkpoints/best, its adapter, the "
          f"final adapter and info's best (step, score, patience counter) are identical")

    # 4. export --best = export of the best step's checkpoint.
    out_best, out_step = os.path.join(work, "export_best"), os.path.join(work, "export_step")
    run(["export", run_b, out_best, "--best"])
    run(["export", os.path.join(run_b, "checkpoints", pointer(run_b, "best")), out_step])
    for f in ("adapter_model.safetensors", "adapter_config.json"):
        if not filecmp.cmp(os.path.join(out_best, f), os.path.join(out_step, f), shallow=False):
            fail(f"export --best: {f} differs from exporting checkpoints/{pointer(run_b, 'best')}")
    if pointer(run_b, "best") != pointer(run_b, "latest"):
        out_latest = os.path.join(work, "export_latest")
        run(["export", run_b, out_latest])
        if filecmp.cmp(os.path.join(out_latest, "adapter_model.safetensors"),
                       os.path.join(out_best, "adapter_model.safetensors"), shallow=False):
            fail("export --best wrote the same adapter as exporting the latest checkpoint")
    print("ok: export RUN --best writes the bytes of exporting the best step's checkpoint")

    # 5. the report's MCQ charts hold the metrics.jsonl values.
    run(["report", run_b])
    root = parse_page(os.path.join(run_b, "report.html"))
    for name in ("medqa", "pubmedqa_test_set"):
        for key in (f"mcq/{name}/acc", f"mcq/{name}/acc_norm"):
            rows = [r for r in metrics(run_b) if key in r]
            check_series(root, f"chart-mcq-{name}", key, [r["step"] for r in rows],
                         [r[key] for r in rows], "all")
    print("ok: report: chart-mcq-medqa and chart-mcq-pubmedqa_test_set draw acc and acc_norm "
          "of every evaluation")


if __name__ == "__main__":
    main()
