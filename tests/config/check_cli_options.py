#!/usr/bin/env python3
"""The command line of every medtune command goes through one table-driven parser
(tools/options.c). Checked here for all commands at once: `medtune` lists them on stderr
with exit 2 (a missing command is a usage error), `medtune --help` on stdout; --help and -h
print the same generated help (usage line, options, no line over 79 columns), also when other
arguments are wrong; usage errors are two lines ("medtune <cmd>: <problem>", then the --help
hint) with exit 2; --opt=value, `--` and the value checks behave the same everywhere; and
`medtune train --help` / `medtune prep --help` list every key of docs/config.md and
docs/prep.md with its default."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import TESTS, fail, run  # noqa: E402

COMMANDS = ["prep", "train", "export", "merge", "eval", "generate", "report", "info", "tokenize",
            "quickstart"]


def usage_error(args, *needles):
    p = run(args, expect=2)
    lines = p.stderr.splitlines()
    cmd = args[0]
    if (len(lines) != 2 or not lines[0].startswith(f"medtune {cmd}: ")
            or lines[1] != f"Try 'medtune {cmd} --help'."):
        fail(f"medtune {' '.join(args)}: expected 'medtune {cmd}: ...' and the --help hint, "
             f"got {p.stderr!r}")
    for n in needles:
        if n not in lines[0]:
            fail(f"medtune {' '.join(args)}: {lines[0]!r} does not say {n!r}")
    if p.stdout:
        fail(f"medtune {' '.join(args)}: a usage error printed to stdout: {p.stdout[:200]!r}")
    return lines[0]


def check_help(cmd):
    text = run([cmd, "--help"]).stdout
    if not text.startswith(f"usage: medtune {cmd}"):
        fail(f"{cmd} --help does not start with its usage line:\n{text[:300]}")
    for s in ("\noptions:\n", "  -h, --help"):
        if s not in text:
            fail(f"{cmd} --help lacks {s.strip()!r}")
    wide = [l for l in text.splitlines() if len(l) > 79]
    if wide:
        fail(f"{cmd} --help has lines over 79 columns: {wide[0]!r}")
    if run([cmd, "-h"]).stdout != text:
        fail(f"{cmd} -h differs from {cmd} --help")
    if run([cmd, "--no-such-option", "--help"]).stdout != text:
        fail(f"{cmd} --no-such-option --help does not print the help")
    usage_error([cmd, "--no-such-option"], "unknown option '--no-such-option'")
    return text


def doc_rows(path, heading):
    """(key, default) of each row of the table under `heading` in a markdown file."""
    text = open(path).read()
    section = text[text.index(heading):]
    section = section[:section.find("\n#", 1)] if "\n#" in section[1:] else section
    return [(m.group(1), m.group(2).strip())
            for m in re.finditer(r"^\| `([^`]+)` \|([^|]*)\|", section, re.M)]


def check_keys_listed(cmd, help_text, doc, heading):
    rows = doc_rows(os.path.join(TESTS, "..", "docs", doc), heading)
    if not rows:
        fail(f"no key table under {heading!r} in docs/{doc}")
    for key, default in rows:
        if not re.search(rf"^  {re.escape(key)} +{re.escape(default)}( |$)", help_text, re.M):
            fail(f"{cmd} --help does not list {key} with its default {default!r} "
                 f"(docs/{doc})")
    print(f"ok: {cmd} --help lists the {len(rows)} keys of docs/{doc} with their defaults")


def main():
    # A missing command is a usage error: the listing goes to stderr and the exit status is 2;
    # asked for with --help, -h or `help` it is the output, on stdout, with status 0.
    p = run([], expect=2)
    listing = p.stderr
    if p.stdout:
        fail(f"`medtune` alone printed to stdout: {p.stdout[:200]!r}")
    for cmd in COMMANDS:
        if not re.search(rf"^  {cmd} +\S", listing, re.M):
            fail(f"`medtune` does not list {cmd}:\n{listing}")
    for arg in ("--help", "-h", "help"):
        p = run([arg])
        if p.stdout != listing or p.stderr:
            fail(f"`medtune {arg}` does not print the listing of `medtune` on stdout alone")
    p = run(["no-such-command"], expect=2)
    if "unknown command 'no-such-command'" not in p.stderr:
        fail(f"unknown command: {p.stderr!r}")
    print("ok: `medtune` lists every command")

    helps = {cmd: check_help(cmd) for cmd in COMMANDS}
    print(f"ok: --help and -h of {len(COMMANDS)} commands, unknown options refused")

    usage_error(["eval", "m", "--shards=d", "--split=test"], "--split", "val|train", "'test'")
    usage_error(["eval", "m", "--shards", "d", "--batch", "0"], "--batch",
                "an integer in [1, 4096]", "'0'")
    usage_error(["eval", "m", "--shards", "d", "--seq-len", "12x"], "--seq-len", "'12x'")
    usage_error(["eval", "m", "--mcq"], "--mcq needs a value")
    usage_error(["eval", "m", "--shards", "d", "--mcq", "f"], "exactly one of --shards, --preference, --mcq and --suite")
    usage_error(["eval", "--shards", "d"], "MODEL is required")
    usage_error(["export", "a", "b", "--format", "peft", "--format=gguf"], "--format given twice")
    usage_error(["info", "x", "--json=yes"], "--json takes no value")
    usage_error(["info", "x", "y"], "unexpected argument 'y'")
    usage_error(["quickstart", "--steps", "0"], "--steps", "[1, 1000000]")
    print("ok: --opt=value, missing and repeated values, ranges, positionals")

    # After `--` every argument is positional, even one that looks like an option.
    p = run(["info", "--", "--json"], expect=1)
    if p.stderr.strip() != "medtune: error: --json: no such file or directory":
        fail(f"info -- --json: {p.stderr!r}")
    # A value that looks like an option is still the value.
    usage_error(["eval", "m", "--shards", "d", "--split", "--json"], "--split", "'--json'")
    print("ok: -- ends the options; values may start with -")

    check_keys_listed("train", helps["train"], "config.md", "## `medtune train`")
    check_keys_listed("prep", helps["prep"], "prep.md", "## Config")
    print("PASS")


if __name__ == "__main__":
    main()
