#!/usr/bin/env python3
"""The source layout rules that the compiler does not check (docs/design.md, README):

- includes between folders point one way: tools -> {export, eval, generate, report} -> train
  -> checkpoints -> {data_prep, model, optim} -> {tokenizer, formats} -> common. A folder
  includes only the folders below it (ALLOWED), and the folder graph has no cycle;
- no C file is longer than MAX_LINES;
- the shared helpers are not copied again: no private now_s()/now_seconds() or clock_gettime
  (common/clock.h), no has_suffix() (common/str.h), no "GGUF" magic literal (formats/gguf.h).

Reads the tree at $MEDTUNE_SOURCE (default: the checkout holding this file). Prints every
offender, then exits 1 when there is one."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import env, fail  # noqa: E402

MAX_LINES = 800

# Which folders each library or CLI folder may include: every folder of a lower layer, and
# tokenizer may use formats (GGUF metadata) within its layer.
BASE = {"common"}
LOW = BASE | {"formats", "tokenizer"}
MID = LOW | {"data_prep", "model", "optim"}
ALLOWED = {
    "common": set(),
    "formats": BASE,
    "tokenizer": BASE | {"formats"},
    "data_prep": LOW,
    "model": LOW,
    "optim": LOW,
    "checkpoints": MID,
    "train": MID | {"checkpoints"},
    "export": MID | {"checkpoints", "train"},
    "eval": MID | {"checkpoints", "train"},
    "generate": MID | {"checkpoints", "train"},
    "report": MID | {"checkpoints", "train"},
    "tools": MID | {"checkpoints", "train", "export", "eval", "generate", "report"},
}
FOLDERS = sorted(ALLOWED)
# Folders whose C files must stay short; tests and benchmarks are code too.
SIZED = FOLDERS + ["bench", "tests"]

INCLUDE = re.compile(r'^\s*#\s*include\s*"([A-Za-z0-9_]+)/[^"]+"', re.M)
# A definition or prototype (at the start of a line, after its return type) of a helper that
# common/ already provides.
PRIVATE_HELPER = re.compile(
    r"^(?:static\s+)?[A-Za-z_][\w\s\*]*?\b(now_s|now_seconds|has_suffix)\s*\(", re.M)
HAND_CLOCK = re.compile(r"\b(clock_gettime|gettimeofday)\s*\(")
GGUF_LITERAL = re.compile(r'"GGUF"')


def c_files(root, folder):
    top = os.path.join(root, folder)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for f in sorted(filenames):
            if f.endswith((".c", ".h")):
                path = os.path.join(dirpath, f)
                yield os.path.relpath(path, root), path


def without_comments(text):
    """The text with comments blanked (newlines kept, so line numbers hold); string and
    character literals are kept as they are."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def line_of(text, pos):
    return text.count("\n", 0, pos) + 1


def find_cycle(graph):
    """One cycle of the folder graph as a list of folders (first == last), or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path)
                if found:
                    return found
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(env("MEDTUNE_SOURCE", os.path.join(here, "..", "..")))
    missing = [f for f in FOLDERS if not os.path.isdir(os.path.join(root, f))]
    if missing:
        fail(f"{root}: not a medtune checkout (no {', '.join(missing)} folder)")
    problems = []
    graph = {f: set() for f in FOLDERS}
    n_files = n_edges = 0

    for folder in FOLDERS:
        for rel, path in c_files(root, folder):
            n_files += 1
            with open(path, encoding="utf-8", errors="replace") as fh:
                code = without_comments(fh.read())
            for m in INCLUDE.finditer(code):
                target = m.group(1)
                if target == folder or target not in ALLOWED:
                    continue
                n_edges += 1
                graph[folder].add(target)
                if target not in ALLOWED[folder]:
                    problems.append(f"{rel}:{line_of(code, m.start())}: {folder}/ includes "
                                    f"{target}/, which the layering forbids ({folder}/ may "
                                    f"include {', '.join(sorted(ALLOWED[folder])) or 'nothing'})")
            if folder == "formats":
                continue
            for m in PRIVATE_HELPER.finditer(code):
                shared = "clock_now_s (common/clock.h)" if m.group(1).startswith("now_") else \
                         "str_has_suffix (common/str.h)"
                problems.append(f"{rel}:{line_of(code, m.start(1))}: private {m.group(1)}(); "
                                f"use {shared}")
            if folder != "common":
                for m in HAND_CLOCK.finditer(code):
                    problems.append(f"{rel}:{line_of(code, m.start())}: {m.group(1)}() for an "
                                    "interval; use clock_now_s (common/clock.h)")
            for m in GGUF_LITERAL.finditer(code):
                problems.append(f"{rel}:{line_of(code, m.start())}: the \"GGUF\" magic; use "
                                "gguf_path_is_gguf or GGUF_MAGIC (formats/gguf.h)")

    cycle = find_cycle(graph)
    if cycle:
        problems.append("include cycle between folders: " + " -> ".join(cycle))

    n_sized = 0
    for folder in SIZED:
        for rel, path in c_files(root, folder):
            n_sized += 1
            with open(path, encoding="utf-8", errors="replace") as fh:
                n = sum(1 for _ in fh)
            if n > MAX_LINES:
                problems.append(f"{rel}: {n} lines, more than {MAX_LINES}; split it by concern")

    if n_files == 0 or n_edges == 0:
        fail(f"{root}: no C file or no include between folders found; is this the source tree?")
    for p in problems:
        print(f"layout: {p}")
    if problems:
        fail(f"{len(problems)} layout problem(s) in {root}")
    edges = ", ".join(f"{f}->{','.join(sorted(graph[f]))}" for f in FOLDERS if graph[f])
    print(f"ok: {n_files} library and CLI files, folder graph acyclic and within the layering "
          f"({edges}); {n_sized} C files of at most {MAX_LINES} lines; no private helper copies")


if __name__ == "__main__":
    main()
