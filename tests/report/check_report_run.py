#!/usr/bin/env python3
"""`medtune report` on real runs of a random-weight llama over the quickstart sample (and of
tinystories-656k over the PubMed XML sample when ../shared is there): a run that is resumed (6 steps, then --resume to 10) and a run caught in progress (the trainer is paused
with SIGSTOP while the report is made). The page is checked against metrics.jsonl, config.json,
the shard manifest and the checkpoints directory, all read here independently."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from report_lib import check_report, fail, medtune, run  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
from train_lib import env, prep_pubmed, write_json  # noqa: E402
from fresh_lib import fresh_model, prep_sample, shared_or_none  # noqa: E402


def work_dir(name):
    d = os.path.join(env("MEDTUNE_TEST_BIN", "/tmp"), "report_tests", name)
    subprocess.run(["rm", "-rf", d], check=True)
    os.makedirs(d)
    return d


def flatten(obj, prefix=""):
    for k, v in obj.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            yield from flatten(v, key)
        else:
            yield key, v


def check_config(page, run_dir):
    config = json.load(open(os.path.join(run_dir, "config.json")))
    table = {tr.find("th").text(): tr.find("td").text()
             for tr in page.by_id("config").find_all("tr")}
    want = dict(flatten(config))
    if set(table) != set(want):
        fail(f"config table keys differ: {sorted(set(table) ^ set(want))}")
    for k, v in want.items():
        got = table[k] if isinstance(v, str) else json.loads(table[k])
        if got != v:
            fail(f"config table {k}: {table[k]!r}, config.json has {v!r}")
    print(f"ok: config table ({len(want)} keys)")
    return config


def check_data(page, config):
    m = json.load(open(os.path.join(config["data"]["train"], "manifest.json")))
    c = m["counts"]
    want = {"documents_kept": c["documents_kept"], "documents_train": c["train"]["documents"],
            "documents_val": c["val"]["documents"], "tokens_train": c["train"]["tokens"],
            "tokens_val": c["val"]["tokens"], "duplicates": c["dropped"]["duplicate"],
            "phi_email": c["phi_replacements"]["email"], "phi_id": c["phi_replacements"]["id"],
            "records_read": c["records_read"]}
    table = page.by_id("data-table")
    for key, v in want.items():
        td = table.find("tr", data_key=key).find("td")
        if float(td.attrs["data-value"]) != v:
            fail(f"data table {key}: {td.attrs['data-value']}, manifest has {v}")
    path = table.find("tr", data_key="path").find("td").text()
    if path != config["data"]["train"]:
        fail(f"data table directory {path!r}")
    print(f"ok: data table ({len(want)} manifest counts)")


def check_checkpoints(page, run_dir, final):
    ck = os.path.join(run_dir, "checkpoints")
    names = sorted(n for n in os.listdir(ck) if n.startswith("step_"))
    rows = page.by_id("checkpoint-table").find_all("tr")[1:]
    shown = [r.find("td").text().replace(" (latest)", "") for r in rows]
    if shown != names:
        fail(f"checkpoints listed {shown}, directory has {names}")
    latest = open(os.path.join(ck, "latest")).read().strip()
    if latest not in page.by_id("latest").text():
        fail(f"latest {latest!r} not shown: {page.by_id('latest').text()!r}")
    if ("not written" in page.by_id("final-adapter").text()) == final:
        fail(f"final adapter line wrong: {page.by_id('final-adapter').text()!r}")
    print(f"ok: checkpoints {shown}, latest {latest}")


def report(run_dir, *extra):
    p = run(["report", run_dir, *extra])
    print(p.stdout.strip())
    return p


def resumed_run(model, shards, work):
    out = os.path.join(work, "run")
    conf = os.path.join(work, "train.json")
    write_json(conf, {"model": model, "data": {"train": shards},
                      "lora": {"r": 4, "dropout": 0.0},
                      "batch": {"micro_batch": 2, "seq_len": 32}, "steps": 6, "save_every": 3,
                      "eval_every": 2, "eval_batches": 2, "threads": 2,
                      "schedule": {"warmup_steps": 2, "decay": "cosine"}, "out_dir": out})
    run(["train", conf])
    run(["train", conf, "--resume", "--set", "steps=10"])
    report(out)
    page, rows, counts = check_report(out, total=10)
    if [r["step"] for r in rows] != list(range(11)):
        fail(f"resumed run: metrics steps {[r['step'] for r in rows]}")
    if counts.get("val_loss") != 6 or counts.get("loss") != 10:
        fail(f"resumed run: chart vertex counts {counts}")
    status = page.by_id("sum-status").find("td").text()
    if status != "finished":
        fail(f"status {status!r}")
    print(f"ok: resumed run charts {counts}")
    check_config(page, out)
    check_data(page, json.load(open(os.path.join(out, "config.json"))))
    check_checkpoints(page, out, final=True)
    other = os.path.join(work, "elsewhere.html")
    report(out, "--out", other)
    if open(other, "rb").read() != open(os.path.join(out, "report.html"), "rb").read():
        fail("--out wrote a different page than the default output")
    print("ok: --out writes the same page")


def in_progress_run(model, shards, work):
    out = os.path.join(work, "live")
    conf = os.path.join(work, "live.json")
    write_json(conf, {"model": model, "data": {"train": shards},
                      "lora": {"r": 4, "dropout": 0.0},
                      "batch": {"micro_batch": 2, "seq_len": 32}, "steps": 100000,
                      "save_every": 5, "eval_every": 4, "eval_batches": 1, "threads": 1,
                      "out_dir": out})
    p = subprocess.Popen([medtune(), "train", conf], stderr=subprocess.DEVNULL)
    metrics = os.path.join(out, "metrics.jsonl")
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if os.path.exists(metrics) and open(metrics).read().count("\n") >= 12:
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGSTOP)
        report(out)
        page, rows, counts = check_report(out, total=100000)
        status = page.by_id("sum-status").find("td").text()
        if not status.startswith("in progress"):
            fail(f"in-progress run: status {status!r}")
        check_checkpoints(page, out, final=False)
        print(f"ok: run in progress at step {rows[-1]['step']}: {counts}")
    finally:
        p.send_signal(signal.SIGTERM)
        p.send_signal(signal.SIGCONT)
        if p.wait(timeout=120) != 0:
            fail(f"the paused trainer exited {p.returncode} after SIGTERM")
    report(out)
    page, rows, _ = check_report(out, total=100000)
    if not page.by_id("sum-status").find("td").text().startswith("in progress or stopped"):
        fail("a stopped run must not be reported finished")
    check_checkpoints(page, out, final=False)
    print(f"ok: stopped run at step {rows[-1]['step']}")


def main():
    work = work_dir("run_random")
    model = fresh_model(os.path.join(work, "random_llama"))
    print(f"random GQA llama, quickstart sample: {model}")
    shards = prep_sample(os.path.join(work, "shards"), model)
    resumed_run(model, shards, work)
    in_progress_run(model, shards, work)
    shared = shared_or_none()
    if shared:
        model = os.path.join(shared, "models/tinystories-656k")
        print(f"tinystories-656k, PubMed sample: {model}")
        work = work_dir("run")
        shards = prep_pubmed(shared, os.path.join(work, "shards"), model)
        resumed_run(model, shards, work)
        in_progress_run(model, shards, work)
    print("PASS")


if __name__ == "__main__":
    main()
