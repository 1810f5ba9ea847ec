"""Independent checks of a `medtune report` page: parse it with Python's html.parser into a
small tree, check it is well formed and self-contained, read every chart's data back from the
SVG geometry and compare it with metrics.jsonl as parsed here, and recompute the summary."""
import json
import math
import os
import re
import sys
from html.parser import HTMLParser

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
from train_lib import fail, medtune, run  # noqa: E402,F401

VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source",
        "track", "wbr"}
MAX_HOVER = 500
FIELDS = ["loss", "lr", "grad_norm", "tokens", "tok_per_s", "elapsed_s", "val_loss", "val_ppl",
          "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
          "logps/chosen", "logps/rejected", "val_rewards/margins", "val_rewards/accuracies"]
# The preference charts of a DPO/ORPO run: (chart id, [(series key, markers)]).
PREF_CHARTS = [("chart-rewards", [("rewards/chosen", "hover"), ("rewards/rejected", "hover"),
                                  ("rewards/margins", "hover"), ("val_rewards/margins", "all")]),
               ("chart-reward-accuracy", [("rewards/accuracies", "hover"),
                                          ("val_rewards/accuracies", "all")]),
               ("chart-logps", [("logps/chosen", "hover"), ("logps/rejected", "hover")])]


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.texts = [], []

    def text(self):
        return "".join(self.texts) + "".join(c.text() for c in self.children)

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    def find_all(self, tag=None, **attrs):
        return [n for n in self.walk() if (tag is None or n.tag == tag)
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def find(self, tag=None, **attrs):
        found = self.find_all(tag, **attrs)
        return found[0] if found else None

    def by_id(self, id_):
        return self.find(id=id_)


class TreeBuilder(HTMLParser):
    """Builds the tree and records every well-formedness problem instead of guessing."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.cur = self.root
        self.problems = []
        self.doctype = False

    def handle_decl(self, decl):
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        if tag in VOID:
            self.problems.append(f"end tag of void element </{tag}>")
        elif self.cur.tag != tag:
            self.problems.append(f"</{tag}> closes <{self.cur.tag}> at {self.getpos()}")
        else:
            self.cur = self.cur.parent

    def handle_data(self, data):
        self.cur.texts.append(data)


def parse_page(path):
    text = open(path, encoding="utf-8").read()
    b = TreeBuilder()
    b.feed(text)
    b.close()
    if not b.doctype:
        fail(f"{path}: no <!DOCTYPE html>")
    if b.problems:
        fail(f"{path}: not well formed: {b.problems[:5]}")
    if b.cur is not b.root:
        fail(f"{path}: <{b.cur.tag}> never closed")
    check_self_contained(path, text, b.root)
    return b.root


def check_self_contained(path, text, root):
    for n in root.walk():
        if n.tag in ("script", "link", "img", "iframe", "object", "embed", "base"):
            fail(f"{path}: has a <{n.tag}> element")
        for k, v in n.attrs.items():
            if k in ("src", "href", "xlink:href", "action", "data") and v is not None:
                fail(f"{path}: external reference {k}={v!r} on <{n.tag}>")
            if k.startswith("on"):
                fail(f"{path}: event handler attribute {k} on <{n.tag}>")
    for bad in ("http://", "https://", "@import", "url("):
        if bad in text:
            fail(f"{path}: contains {bad!r}")


# ---- metrics.jsonl, read independently of medtune ----

C_NONFINITE = re.compile(r'(?<=[:\s,\[])(-?)(nan|inf|NaN)(?=[,}\]\s])')


def parse_metrics_line(line):
    """The row of a valid line, or None. Valid: a JSON object (NaN/Infinity as Python writes
    them, nan/inf as printf writes them) with an integer step >= 0, every known field a
    number or null, at least one known field present."""
    fixed = C_NONFINITE.sub(lambda m: m.group(1) + "Infinity" if m.group(2) == "inf" else "NaN",
                            line)
    try:
        d = json.loads(fixed)
    except ValueError:
        return None
    if not isinstance(d, dict):
        return None
    def number(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        try:
            return float(v)
        except OverflowError:  # an integer literal beyond the double range, as strtod reads it
            return math.inf if v > 0 else -math.inf

    step = number(d.get("step"))
    if step is None or not math.isfinite(step) or not 0 <= step <= 1e15 or step != int(step):
        return None
    row = {"step": int(step)}
    for f in FIELDS:
        if f not in d or d[f] is None:
            continue
        v = number(d[f])
        if v is None:
            return None
        row[f] = v
    return row if len(row) > 1 else None


def read_metrics(path):
    rows, malformed, n_lines, replaced = {}, [], 0, 0
    with open(path, encoding="utf-8", errors="replace", newline="\n") as f:
        for i, line in enumerate(f, 1):
            if not line.strip(" \t\r\n"):
                continue
            n_lines += 1
            r = parse_metrics_line(line)
            if r is None:
                malformed.append(i)
                continue
            replaced += r["step"] in rows
            rows[r["step"]] = r
    return [rows[s] for s in sorted(rows)], malformed, n_lines, replaced


def ema(values, span):
    a = 2.0 / (span + 1.0)
    out, num, den = [], 0.0, 0.0
    for v in values:
        if not math.isfinite(v):
            out.append(float("nan"))
            continue
        num = (1 - a) * num + a * v
        den = (1 - a) * den + a
        out.append(num / den)
    return out


def expected_summary(rows):
    s = {}
    train = [r for r in rows if "loss" in r]
    s["steps"] = train[-1]["step"] if train else 0
    tok = [r["tokens"] for r in rows if "tokens" in r]
    s["tokens"] = tok[-1] if tok else None
    el = [r["elapsed_s"] for r in rows if math.isfinite(r.get("elapsed_s", math.nan))]
    s["elapsed"] = max(el) if el else None
    tps = [r["tok_per_s"] for r in rows if math.isfinite(r.get("tok_per_s", math.nan))]
    s["tok-per-s"] = sum(tps) / len(tps) if tps else None
    s["last-loss"] = (train[-1]["loss"], train[-1]["step"]) if train else None
    evals = [r for r in rows if "val_loss" in r]
    s["evals"] = len(evals)
    finite = [r for r in evals if math.isfinite(r["val_loss"])]
    best = min(finite, key=lambda r: r["val_loss"]) if finite else None
    s["best-val-loss"] = (best["val_loss"], best["step"]) if best else None
    ppl = [r for r in rows if "val_ppl" in r]
    s["first-val-ppl"] = (ppl[0]["val_ppl"], ppl[0]["step"]) if ppl else None
    s["last-val-ppl"] = (ppl[-1]["val_ppl"], ppl[-1]["step"]) if ppl else None
    s["nonfinite"] = sum(1 for r in rows for f in FIELDS if f in r and not math.isfinite(r[f]))
    return s


def same(a, b, rel=1e-12):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def check_summary(root, rows, malformed, n_lines, total):
    exp = expected_summary(rows)
    table = root.by_id("summary")
    if table is None:
        fail("no summary section")

    def cell(key):
        tr = root.by_id("sum-" + key)
        if tr is None:
            fail(f"summary row sum-{key} missing")
        return tr.find("td")

    td = cell("steps")
    if int(td.attrs["data-value"]) != exp["steps"] or int(td.attrs["data-total"]) != total:
        fail(f"steps: page says {td.attrs}, expected {exp['steps']} / {total}")
    for key in ("tokens", "elapsed", "tok-per-s", "last-loss", "best-val-loss", "first-val-ppl",
                "last-val-ppl"):
        want = exp[key]
        td = cell(key)
        if want is None:
            if "data-value" in td.attrs:
                fail(f"summary {key}: page has {td.attrs['data-value']}, expected none")
            continue
        value, step = want if isinstance(want, tuple) else (want, None)
        got = float(td.attrs.get("data-value", "nan"))
        if not same(got, value):
            fail(f"summary {key}: page {got!r}, computed {value!r}")
        if step is not None and int(td.attrs.get("data-step", -1)) != step:
            fail(f"summary {key}: page step {td.attrs.get('data-step')}, computed {step}")
    for key, want in (("evals", exp["evals"]), ("nonfinite", exp["nonfinite"]),
                      ("malformed", len(malformed)), ("lines", n_lines)):
        got = float(cell(key).attrs["data-value"])
        if got != want:
            fail(f"summary {key}: page {got}, computed {want}")
    return exp


# ---- charts: data read back from the SVG geometry ----

def svg_frame(svg):
    a = svg.attrs
    return {k: float(a["data-" + k]) for k in ("x0", "x1", "y0", "y1", "xlo", "xhi", "ylo", "yhi")}


def to_data(fr, px, py):
    x = fr["xlo"] + (px - fr["x0"]) / (fr["x1"] - fr["x0"]) * (fr["xhi"] - fr["xlo"])
    y = fr["ylo"] + (fr["y0"] - py) / (fr["y0"] - fr["y1"]) * (fr["yhi"] - fr["ylo"])
    return x, y


def path_vertices(d):
    """[(subpath index, x, y)] of an M/L path."""
    out, sub = [], -1
    for cmd, x, y in re.findall(r"([ML])\s*(-?[\d.]+)[ ,](-?[\d.]+)", d):
        sub += cmd == "M"
        out.append((sub, float(x), float(y)))
    if re.sub(r"[ML]\s*-?[\d.]+[ ,]-?[\d.]+", "", d).strip():
        fail(f"path data has commands other than M/L: {d[:80]}")
    return out


def check_ticks(svg, fr, chart_id):
    """Tick labels must sit where their values map: the axes do not lie."""
    ticks = svg.find("g", **{"class": "ticks"})
    if ticks is None:
        fail(f"{chart_id}: no tick labels")
    xl, yl = svg.find("text", **{"class": "xlabel"}), svg.find("text", **{"class": "ylabel"})
    if xl is None or yl is None or not xl.text().strip() or not yl.text().strip():
        fail(f"{chart_id}: axis labels missing")
    scale = {}
    for axis, lab in (("x", xl), ("y", yl)):
        m = re.search(r"\(\u00d71e(-?\d+)\)", lab.text())
        scale[axis] = 10.0 ** int(m.group(1)) if m else 1.0
    n_x = n_y = 0
    for t in ticks.find_all("text"):
        v = float(t.text())
        tx, ty = float(t.attrs["x"]), float(t.attrs["y"])
        if t.attrs["text-anchor"] == "middle":
            x, _ = to_data(fr, tx, 0)
            if abs(x - v * scale["x"]) > 0.006 / (fr["x1"] - fr["x0"]) * (fr["xhi"] - fr["xlo"]):
                fail(f"{chart_id}: x tick {t.text()} is drawn at {x}")
            n_x += 1
        else:
            _, y = to_data(fr, 0, ty - 4)
            if abs(y - v * scale["y"]) > 0.006 / (fr["y0"] - fr["y1"]) * (fr["yhi"] - fr["ylo"]):
                fail(f"{chart_id}: y tick {t.text()} (x{scale['y']}) is drawn at {y}")
            n_y += 1
    if n_x < 2 or n_y < 2:
        fail(f"{chart_id}: {n_x} x ticks and {n_y} y ticks")


def check_series(root, chart_id, key, xs, ys, markers):
    """The series' path has one vertex per finite value, in step order, at the right place
    (within the 0.01 px rounding of the path data); a non-finite value breaks the line; with
    `markers` ("all" or "hover") each point has a <circle> whose <title> names its step and
    value."""
    svg = root.find("svg", id=chart_id)
    if svg is None:
        fail(f"no <svg id={chart_id}>")
    fr = svg_frame(svg)
    check_ticks(svg, fr, chart_id)
    path = svg.find("path", data_series=key)
    if path is None:
        fail(f"{chart_id}: no path for series {key}")
    verts = path_vertices(path.attrs["d"])
    want = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
    if len(verts) != len(want):
        fail(f"{chart_id}/{key}: {len(verts)} path vertices, metrics.jsonl has {len(want)} "
             f"finite values")
    runs = 0
    prev_finite = False
    for y in ys:
        runs += math.isfinite(y) and not prev_finite
        prev_finite = math.isfinite(y)
    if len({v[0] for v in verts}) != runs:
        fail(f"{chart_id}/{key}: {len({v[0] for v in verts})} subpaths, expected {runs} "
             f"(non-finite values must break the line)")
    tol_x = 0.006 / (fr["x1"] - fr["x0"]) * (fr["xhi"] - fr["xlo"])
    tol_y = 0.006 / (fr["y0"] - fr["y1"]) * (fr["yhi"] - fr["ylo"])
    for (_, px, py), (x, y) in zip(verts, want):
        gx, gy = to_data(fr, px, py)
        if abs(gx - x) > tol_x or abs(gy - y) > tol_y:
            fail(f"{chart_id}/{key}: vertex ({px}, {py}) reads back as ({gx}, {gy}), "
                 f"metrics.jsonl has ({x}, {y})")
        if not (fr["ylo"] <= y <= fr["yhi"]):
            fail(f"{chart_id}/{key}: value {y} outside the axis [{fr['ylo']}, {fr['yhi']}]")
    # The vertical order of the vertices is the order of the values (SVG y grows downwards).
    for i in range(len(want) - 1):
        dv = want[i + 1][1] - want[i][1]
        dp = verts[i + 1][2] - verts[i][2]
        if abs(dv) > 2 * tol_y and (dv > 0) != (dp < 0):
            fail(f"{chart_id}/{key}: vertices {i} and {i + 1} are drawn in the wrong order")
    if markers:
        # Hover-only dots are thinned to at most 500 per series (every k-th point and the
        # last); visible markers are never thinned.
        stride = -(-len(xs) // MAX_HOVER) if markers == "hover" else 1
        dots = [(x, y) for i, (x, y) in enumerate(zip(xs, ys))
                if math.isfinite(y) and (i % stride == 0 or i == len(xs) - 1)]
        g = svg.find("g", data_series=key)
        circles = g.find_all("circle") if g else []
        if len(circles) != len(dots):
            fail(f"{chart_id}/{key}: {len(circles)} hover points, expected {len(dots)}")
        for c, (x, y) in zip(circles, dots):
            m = re.match(r"step (\d+): .* (\S+)$", c.text())
            if not m or int(m.group(1)) != x or not same(float(m.group(2)), y, 1e-5):
                fail(f"{chart_id}/{key}: point title {c.text()!r}, expected step {x} value {y}")
    return len(verts)


def check_charts(root, rows):
    """Every chart of the page against metrics.jsonl. Returns {series key: vertices}."""
    counts = {}

    def field(f):
        sel = [r for r in rows if f in r]
        return [r["step"] for r in sel], [r[f] for r in sel]

    xs, ys = field("loss")
    if xs:
        counts["loss"] = check_series(root, "chart-loss", "loss", xs, ys, "hover")
        span = min(200.0, max(5.0, sum(map(math.isfinite, ys)) / 20.0))
        counts["loss_ema"] = check_series(root, "chart-loss", "loss_ema", xs, ema(ys, span),
                                          None)
    xs, ys = field("val_loss")
    if xs:
        counts["val_loss"] = check_series(root, "chart-loss", "val_loss", xs, ys, "all")
    elif root.find("path", data_series="val_loss") is not None:
        fail("a val_loss series is drawn for a run without evaluations")
    xs, ys = field("val_ppl")
    if xs:
        counts["val_ppl"] = check_series(root, "chart-ppl", "val_ppl", xs, ys, "all")
    elif root.by_id("chart-ppl") is None or root.by_id("chart-ppl").tag != "p":
        fail("without evaluations, chart-ppl must be a note")
    if any("rewards/margins" in r for r in rows):
        for chart_id, series in PREF_CHARTS:
            for key, markers in series:
                xs, ys = field(key)
                if xs:
                    counts[key] = check_series(root, chart_id, key, xs, ys, markers)
    elif root.by_id("chart-rewards") is not None:
        fail("preference charts are drawn for a run without preference metrics")
    for chart_id, f in (("chart-lr", "lr"), ("chart-speed", "tok_per_s"),
                        ("chart-grad", "grad_norm")):
        xs, ys = field(f)
        if any(map(math.isfinite, ys)):
            counts[f] = check_series(root, chart_id, f, xs, ys, "hover")
        elif root.by_id(chart_id) is None or root.by_id(chart_id).tag != "p":
            fail(f"{chart_id}: no data, so the page must say so")
    return counts


def check_report(run_dir, total, out=None):
    """Everything about the report of run_dir that metrics.jsonl determines."""
    page = parse_page(out or os.path.join(run_dir, "report.html"))
    rows, malformed, n_lines, replaced = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    exp = check_summary(page, rows, malformed, n_lines, total)
    counts = check_charts(page, rows)
    warn = page.by_id("warn-malformed")
    if bool(malformed) != (warn is not None):
        fail(f"malformed lines {malformed}, warning shown: {warn is not None}")
    if malformed:
        listed = [int(n) for n in re.findall(r"\d+", warn.text().split("(line", 1)[1].split(")")[0])]
        if listed != malformed[:8]:
            fail(f"the malformed warning lists lines {listed}, Python finds {malformed[:8]}")
    if bool(exp["nonfinite"]) != (page.by_id("warn-nonfinite") is not None):
        fail("the NaN/Inf warning must be shown exactly when there are non-finite values")
    if bool(replaced) != (page.by_id("warn-replaced") is not None):
        fail("the repeated-step warning must be shown exactly when a step repeats")
    return page, rows, counts
