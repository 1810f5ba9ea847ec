#!/usr/bin/env python3
"""`medtune report` on hand-written run directories: NaN/Inf values, malformed and torn
lines, no evaluation, a run in progress, a single step, repeated steps, a long run, strings
that need HTML escaping, a missing config; and the errors (missing or empty inputs, usage)."""
import json
import math
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from report_lib import check_report, fail, medtune, parse_page, run  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
from train_lib import env  # noqa: E402

WORK = os.path.join(env("MEDTUNE_TEST_BIN", "/tmp"), "report_tests", "edges")


def step_line(step, loss, lr=1e-4, grad=1.0, tps=1000.0, val=None, **extra):
    d = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad, "tokens": 64 * step,
         "tok_per_s": tps, "elapsed_s": 0.1 * step}
    if val is not None:
        d.update(val_loss=val, val_ppl=math.exp(val) if val < 700 else math.inf)
    d.update(extra)
    return json.dumps(d)


def make_run(name, lines, config=None, trailing_newline=True):
    d = os.path.join(WORK, name)
    os.makedirs(d)
    text = "\n".join(lines) + ("\n" if trailing_newline and lines else "")
    open(os.path.join(d, "metrics.jsonl"), "w").write(text)
    if config is not None:
        json.dump(config, open(os.path.join(d, "config.json"), "w"), indent=1)
    return d


def config(steps, eval_every=0, **data):
    return {"model": "/models/tiny", "data": {"train": data.get("train"), "val": None},
            "steps": steps, "eval_every": eval_every, "lora": {"r": 4, "targets": ["q_proj"]}}


def report(d, expect=0):
    p = run(["report", d], expect=expect)
    return p


def cell(page, key):
    return page.by_id("sum-" + key).find("td")


def nan_values():
    lines = ['{"step": 0, "val_loss": 2.5, "val_ppl": 12.182493960703473, "elapsed_s": 0.0}',
             step_line(1, 2.4),
             # Python's json writes NaN / Infinity, C's printf nan / inf / -nan.
             '{"step": 2, "loss": NaN, "lr": 1e-4, "grad_norm": inf, "tokens": 128, '
             '"tok_per_s": 900.0, "elapsed_s": 0.2}',
             step_line(3, 2.2, val=2.3).replace('"val_ppl": 9.974182454814718', '"val_ppl": Infinity'),
             '{"step": 4, "loss": -nan, "lr": 1e-4, "grad_norm": 1.1, "tokens": 256, '
             '"tok_per_s": 1100.0, "elapsed_s": 0.4}',
             step_line(5, 2.0, grad=-math.inf), step_line(6, 1.9, val=2.1)]
    d = make_run("nan", lines, config(6, 3))
    report(d)
    page, rows, counts = check_report(d, total=6)
    if counts["loss"] != 4 or counts["grad_norm"] != 4 or counts["val_ppl"] != 2:
        fail(f"nan: vertex counts {counts}")
    if cell(page, "nonfinite").attrs["data-value"] != "5":
        fail(f"nan: {cell(page, 'nonfinite').attrs} non-finite values, expected 5")
    warn = page.by_id("warn-nonfinite").text()
    for needle in ("loss = nan at step 2", "grad_norm = inf at step 2", "val_ppl = inf at step 3",
                   "grad_norm = -inf at step 5"):
        if needle not in warn:
            fail(f"nan: warning lacks {needle!r}: {warn}")
    for svg in page.find_all("svg"):
        if "nan" in svg.text().lower() or "inf" in svg.text().lower():
            fail(f"nan: {svg.attrs['id']} shows a non-finite number")
    print("ok: NaN / Inf values skipped in charts, flagged in the summary")


def malformed_lines():
    lines = [step_line(1, 2.5),
             '{"step": 2, "loss": 2.3, "lr": 0.0001',
             "not json at all",
             '{"step": "3", "loss": 2.2}',
             '{"loss": 2.1}',
             "[1, 2, 3]",
             '{"step": -1, "loss": 2.0}',
             '{"step": 1.5, "loss": 2.0}',
             '{"step": 4, "loss": "low"}',
             '{"step": 5, "loss": 2.0} trailing',
             '{"step": 6}',
             '{"step": 6, "loss": 1.95, "note": {"nested": [1, {"a": "}"}]}, "ok": true, '
             '"name": "x\\"y"}',
             "",
             "   ",
             step_line(8, 1.8),
             '{"step": 9, "loss": 1.7, "lr": 1e-4, "grad_n']
    d = make_run("malformed", lines, config(20), trailing_newline=False)
    report(d)
    page, rows, _ = check_report(d, total=20)
    if [r["step"] for r in rows] != [1, 6, 8]:
        fail(f"malformed: the test's own parse kept steps {[r['step'] for r in rows]}")
    warn = page.by_id("warn-malformed").text()
    if "incomplete" not in warn:
        fail(f"malformed: the torn last line is not pointed out: {warn}")
    print(f"ok: malformed lines skipped and counted ({cell(page, 'malformed').text()})")


def no_eval():
    d = make_run("noeval", [step_line(s, 3.0 - 0.1 * s) for s in range(1, 9)], config(8))
    report(d)
    page, _, counts = check_report(d, total=8)
    if "val_loss" in counts or page.by_id("chart-ppl").tag != "p":
        fail("noeval: a validation curve was drawn")
    if "data-value" in cell(page, "best-val-loss").attrs:
        fail("noeval: a best val loss is reported")
    print("ok: run without evaluation")


def in_progress():
    # Two evaluations tie for the best val loss: the first one is reported.
    vals = {2: 2.0, 4: 2.0, 6: 2.2}
    d = make_run("progress", [step_line(s, 3.0 / s, val=vals.get(s)) for s in range(1, 8)],
                 config(100, 2))
    ck = os.path.join(d, "checkpoints")
    for name in ("step_00000005", "step_00000010.tmp"):
        os.makedirs(os.path.join(ck, name, "adapter"))
        open(os.path.join(ck, name, "state.h5"), "wb").write(b"\0" * 2048)
        open(os.path.join(ck, name, "adapter", "adapter_model.safetensors"), "wb").write(b"x")
    open(os.path.join(ck, "latest"), "w").write("step_00000005\n")
    report(d)
    page, _, _ = check_report(d, total=100)
    steps = cell(page, "steps").text()
    status = cell(page, "status").text()
    if steps != "7 / 100 (7%)" or not status.startswith("in progress"):
        fail(f"in progress: steps {steps!r}, status {status!r}")
    rows = [[td.text() for td in tr.find_all("td")]
            for tr in page.by_id("checkpoint-table").find_all("tr")[1:]]
    if rows[0][:2] != ["step_00000005 (latest)", "complete"] or rows[0][2] != "2.0 kB" or \
            rows[1][:2] != ["step_00000010.tmp", "incomplete (interrupted write)"]:
        fail(f"in progress: checkpoint rows {rows}")
    if cell(page, "best-val-loss").attrs.get("data-step") != "2":
        fail(f"in progress: best val loss {cell(page, 'best-val-loss').attrs}, expected step 2")
    if "not written" not in page.by_id("final-adapter").text():
        fail("in progress: the final adapter is reported written")
    print("ok: run in progress (partial checkpoint, no final adapter)")


def single_step():
    d = make_run("single", [step_line(1, 2.0)], config(1))
    report(d)
    _, _, counts = check_report(d, total=1)
    if counts != {"loss": 1, "loss_ema": 1, "lr": 1, "tok_per_s": 1, "grad_norm": 1}:
        fail(f"single step: {counts}")
    print("ok: a single step")


def repeated_steps():
    lines = [step_line(s, 3.0 - 0.1 * s) for s in (1, 2, 3)] + \
            [step_line(s, 5.0 - 0.1 * s) for s in (2, 3, 4)]
    d = make_run("repeated", lines, config(4))
    report(d)
    page, rows, _ = check_report(d, total=4)
    if [r["loss"] for r in rows] != [2.9, 4.8, 4.7, 4.6]:
        fail(f"repeated: {rows}")
    print("ok: a repeated step uses the later line")


def long_run():
    rnd = random.Random(7)
    lines = ['{"step": 0, "val_loss": 4.0, "val_ppl": 54.598150033144236, "elapsed_s": 0.0}']
    for s in range(1, 3001):
        val = 4.0 - s / 1500 if s % 100 == 0 else None
        lines.append(step_line(s, 4.0 - s / 1000 + rnd.gauss(0, 0.3), lr=3e-4 * (1 - s / 3000),
                               grad=abs(rnd.gauss(1, 0.2)), tps=rnd.uniform(4e4, 6e4), val=val))
    d = make_run("long", lines, config(3000, 100))
    report(d)
    page, _, counts = check_report(d, total=3000)
    hits = page.find("svg", id="chart-loss").find("g", data_series="loss").find_all("circle")
    if counts["loss"] != 3000 or len(hits) > 501:
        fail(f"long: {counts['loss']} vertices, {len(hits)} hover points")
    size = os.path.getsize(os.path.join(d, "report.html"))
    print(f"ok: 3000 steps ({size // 1024} kB page, {len(hits)} hover points per curve)")


def escaping():
    shards = os.path.join(WORK, "shards <b>&amp;")
    os.makedirs(shards)
    evil = "<img src=x onerror=alert(1)>"
    json.dump({"tokenizer": {"path": evil, "vocab_size": 32},
               "counts": {"documents_kept": 3, "train": {"documents": 2, "tokens": 10},
                          "val": {"documents": 1, "tokens": 5},
                          "dropped": {"duplicate": 1},
                          "phi_replacements": {"email": 2, "url": 0, "phone": 0, "id": 1}}},
              open(os.path.join(shards, "manifest.json"), "w"))
    cfg = config(2, train=shards)
    cfg["model"] = "<script>alert('x')</script> & \"q\""
    d = make_run("escape <i>", [step_line(1, 2.0), step_line(2, 1.9)], cfg)
    report(d)
    page, _, _ = check_report(d, total=2)
    text = page.text()
    for s in (cfg["model"], shards, evil, d):
        if s not in text:
            fail(f"escape: {s!r} is not shown as text")
    for tag in ("b", "i", "img", "script"):
        if page.find(tag) is not None:
            fail(f"escape: a <{tag}> element came from a file")
    tr = page.by_id("data-table").find("tr", data_key="phi_email")
    if tr.find("td").attrs.get("data-value") != "2":
        fail("escape: data table PHI count")
    print("ok: strings from files are escaped")


def no_config():
    d = make_run("noconfig", [step_line(1, 2.0), step_line(2, 1.9)])
    report(d)
    page, _, _ = check_report(d, total=-1)
    if page.by_id("warn-config") is None or "config.json" not in page.by_id("warn-config").text():
        fail("noconfig: the missing config.json is not pointed out")
    print("ok: a run directory without config.json")


def huge_total_steps():
    # A hand-edited config.json with steps beyond any integer type: the total is unknown, as
    # without a config (the value was converted to int64 unchecked: undefined behaviour).
    for i, steps in enumerate((1e300, -1e300, 2.5)):
        d = make_run(f"hugesteps{i}", [step_line(1, 2.0), step_line(2, 1.9)], config(steps))
        report(d)
        check_report(d, total=-1)
    print("ok: a config.json whose steps is 1e300, -1e300 or 2.5 (total unknown)")


def missing_manifest():
    d = make_run("nomanifest", [step_line(1, 2.0)], config(1, train=os.path.join(WORK, "gone")))
    report(d)
    page = parse_page(os.path.join(d, "report.html"))
    note = page.by_id("data-table").find("tr", data_key="manifest").find("td").text()
    if "gone/manifest.json" not in note:
        fail(f"nomanifest: {note!r}")
    print("ok: a missing manifest is noted")


def fuzz():
    """400 lines built from valid and invalid JSON pieces, then mutated: the lines medtune
    keeps and skips must be exactly those Python's json module accepts and rejects."""
    rnd = random.Random(11)
    keys = ["step", "loss", "lr", "grad_norm", "tokens", "tok_per_s", "elapsed_s", "val_loss",
            "val_ppl", "note", "lo\\u0073s", "Loss"]
    values = ["1", "0", "-0", "2.5", "1e-3", "1E+2", "-7.25e1", "NaN", "nan", "-nan", "inf",
              "-inf", "Infinity", "-Infinity", "null", "1e400", "3.25", "0.125", "17", "4e-5",
              "01", "1.", ".5", "-", "+1", "Inf", "NAN", "true", "false", "True", '"s"', '"a\\"b"', '"\\x"', '"\\u00e9"', "[1, 2]",
              "[nan]", '{"a": [1, {"b": null}]}', "[1,]", "{}", "[]", "-1e400",
              "1" * 400, '"tab\there"']
    steps = [str(s) for s in range(1, 40)] + ["-1", "1.5", '"3"', "null", "1e3", "2.0", "true",
                                             "1e16", "nan"]
    lines = []
    for _ in range(400):
        n = rnd.randint(1, 6)
        fields = [("step", rnd.choice(steps[:39] if rnd.random() < 0.8 else steps))] \
            if rnd.random() < 0.95 else []
        fields += [(rnd.choice(keys), rnd.choice(values[:20] if rnd.random() < 0.7 else values))
                   for _ in range(n)]
        rnd.shuffle(fields)
        line = "{" + ", ".join(f'"{k}": {v}' for k, v in fields) + "}"
        r = rnd.random()
        if r < 0.1:
            line = line[:rnd.randrange(len(line))]
        elif r < 0.2:
            i = rnd.randrange(len(line) + 1)
            line = line[:i] + rnd.choice('{}[],:" \tx0\r') + line[i:]
        elif r < 0.25:
            i = rnd.randrange(len(line))
            line = line[:i] + line[i + 1:]
        lines.append(line)
    d = make_run("fuzz", lines, config(40))
    report(d)
    page, rows, counts = check_report(d, total=40)
    print(f"ok: 400 fuzzed lines: {len(rows)} distinct steps kept, "
          f"{cell(page, 'malformed').attrs['data-value']} lines skipped, as Python's json")


def expect_error(args, code, *needles):
    p = run(args, expect=code)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    if code == 1 and (len(lines) != 1 or not lines[0].startswith("medtune: error: ")):
        fail(f"medtune {' '.join(args)}: expected one error line, got {p.stderr!r}")
    for n in needles:
        if n not in p.stderr:
            fail(f"medtune {' '.join(args)}: error does not mention {n!r}: {p.stderr!r}")
    print(f"ok: exit {code}: {lines[0] if lines else ''}")


def errors():
    missing = os.path.join(WORK, "no_such_run")
    expect_error(["report", missing], 1, missing)
    a_file = os.path.join(WORK, "a_file")
    open(a_file, "w").write("x")
    expect_error(["report", a_file], 1, a_file, "not a directory")
    bare = os.path.join(WORK, "bare")
    os.makedirs(bare)
    expect_error(["report", bare], 1, os.path.join(bare, "metrics.jsonl"), "not found")
    for name, text in (("empty", ""), ("blank", "\n \n\n"), ("garbage", "nope\n{\"a\": 1}\n")):
        d = os.path.join(WORK, name)
        os.makedirs(d)
        open(os.path.join(d, "metrics.jsonl"), "w").write(text)
        expect_error(["report", d], 1, os.path.join(d, "metrics.jsonl"))
        if os.listdir(d) != ["metrics.jsonl"]:
            fail(f"{name}: files left behind: {os.listdir(d)}")
    ok = make_run("target", [step_line(1, 2.0)], config(1))
    expect_error(["report", ok, "--out", os.path.join(WORK, "no_dir", "r.html")], 1, "no_dir")
    expect_error(["report"], 2, "RUN_DIR")
    expect_error(["report", ok, "--bogus"], 2, "--bogus")
    expect_error(["report", ok, "--out"], 2, "--out")
    expect_error(["report", ok, ok], 2)
    p = run(["report", "--help"])
    if "--out FILE" not in p.stdout or "default: RUN_DIR/report.html" not in p.stdout:
        fail(f"--help does not list --out with its default: {p.stdout}")
    if "report" not in run(["--help"]).stdout:
        fail("medtune --help does not list report")
    print("ok: --help")


def main():
    subprocess.run(["rm", "-rf", WORK], check=True)
    os.makedirs(WORK)
    nan_values()
    malformed_lines()
    no_eval()
    in_progress()
    single_step()
    repeated_steps()
    long_run()
    escaping()
    no_config()
    huge_total_steps()
    missing_manifest()
    fuzz()
    errors()
    print("PASS")


if __name__ == "__main__":
    main()
