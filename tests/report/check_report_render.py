#!/usr/bin/env python3
"""The report renders in a real browser: headless chromium takes a screenshot of the page of
a 200-step run (hand-written, with evaluations and one NaN) and the PNG must show the page
text and every chart's colours. Skipped when chromium (Debian package `chromium`) or PIL is
absent. The screenshot is left in the test's work directory for a person to look at."""
import json
import math
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from report_lib import check_report, fail, run  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
from train_lib import env, skip  # noqa: E402

# The colours of the series as report_chart draws them (report/report.c).
COLOURS = {"train loss": (0x9e, 0xc5, 0xe8), "loss EMA": (0x1f, 0x4e, 0x9c),
           "val": (0xe6, 0x55, 0x0d), "lr": (0x2c, 0xa0, 0x2c), "tok/s": (0x7b, 0x32, 0x94),
           "grad norm": (0x8c, 0x56, 0x4b)}


def write_run(d):
    os.makedirs(d)
    rnd = random.Random(3)
    lines = ['{"step": 0, "val_loss": 3.2, "val_ppl": 24.532530197109352, "elapsed_s": 0.0}']
    for s in range(1, 201):
        lr = 2e-4 * min(1.0, s / 20) * (0.5 + 0.5 * math.cos(math.pi * max(0, s - 20) / 180))
        d_ = {"step": s, "loss": 3.0 * math.exp(-s / 120) + 1.0 + rnd.gauss(0, 0.12),
              "lr": lr, "grad_norm": abs(rnd.gauss(0.8, 0.15)), "tokens": 512 * s,
              "tok_per_s": rnd.uniform(15000, 19000), "elapsed_s": 0.03 * s}
        if s == 77:
            d_["loss"] = math.nan
        if s % 20 == 0:
            d_["val_loss"] = 3.1 * math.exp(-s / 150) + 1.1
            d_["val_ppl"] = math.exp(d_["val_loss"])
        lines.append(json.dumps(d_))
    open(os.path.join(d, "metrics.jsonl"), "w").write("\n".join(lines) + "\n")
    json.dump({"model": "/models/tinystories-656k", "data": {"train": None}, "steps": 200,
               "eval_every": 20}, open(os.path.join(d, "config.json"), "w"))


def main():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        skip("chromium is not installed (apt-get install chromium); no screenshot check")
    try:
        from PIL import Image
    except ImportError:
        skip("PIL is not installed (python3-pil); no screenshot check")
    work = os.path.join(env("MEDTUNE_TEST_BIN", "/tmp"), "report_tests", "render")
    subprocess.run(["rm", "-rf", work], check=True)
    d = os.path.join(work, "run")
    write_run(d)
    run(["report", d])
    check_report(d, total=200)
    png = os.path.join(work, "report.png")
    p = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox",
                        f"--user-data-dir={os.path.join(work, 'profile')}", "--hide-scrollbars",
                        f"--screenshot={png}", "--window-size=1200,3400",
                        "file://" + os.path.join(d, "report.html")],
                       capture_output=True, text=True, timeout=180)
    if not os.path.exists(png):
        fail(f"chromium wrote no screenshot (exit {p.returncode}):\n{p.stderr[-2000:]}")
    im = Image.open(png).convert("RGB")
    if im.size != (1200, 3400):
        fail(f"screenshot is {im.size}")
    px = im.load()
    counts = {k: 0 for k in COLOURS}
    dark = 0
    for y in range(0, im.size[1]):
        for x in range(0, im.size[0], 2):
            r, g, b = px[x, y]
            if r < 90 and g < 90 and b < 90:
                dark += 1
            for k, (cr, cg, cb) in COLOURS.items():
                if abs(r - cr) < 12 and abs(g - cg) < 12 and abs(b - cb) < 12:
                    counts[k] += 1
    print(f"screenshot {png}: {dark} dark (text) pixels, colour pixels {counts}")
    if dark < 5000:
        fail("the page shows almost no text")
    for k, n in counts.items():
        if n < 150:
            fail(f"the {k} curve is not visible in the screenshot ({n} pixels of its colour)")
    print("PASS")


if __name__ == "__main__":
    main()
