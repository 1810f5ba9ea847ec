#!/usr/bin/env python3
"""The markdown tables of bench/medical_results.sh, from the outputs of its run.

    medical_results_table.py OUT DPO_DIR DPO_MODE

OUT holds times.tsv (row, stage, wall seconds, load, output file, command per command) and the
outputs it names; DPO_DIR a bench/preference_job.sh output directory (eval_heldout.json,
times.tsv, dpo/), DPO_MODE `run` (run by this invocation), `reuse` (an earlier run) or `skip`
(row 3 not asked for).
Row 4 projects the measured training times to larger bases with bench/scaling_model.py's FLOP
and reduction model."""
import csv
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scaling_model import SHAPES, flops_per_token, lora_params  # noqa: E402

ROWS = {"1": "1 DAPT", "2": "2 SFT", "3": "3 DPO"}


def load_json(path):
    with open(path) as f:
        return json.load(f)


def last_metrics(run_dir):
    """The last training line of metrics.jsonl (lines with a step and a loss)."""
    last = None
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if "step" in m and "loss" in m and "tok_per_s" in m:
                last = m
    return last


def run_dir_of(command):
    """The out_dir="..." of a `medtune train ... --set out_dir=...` command line."""
    key = 'out_dir="'
    i = command.rindex(key) + len(key)
    return command[i:command.index('"', i)]


def describe(out, st):
    """The numbers of one stage, from its output file."""
    name, path = st["stage"], os.path.join(out, st["output"])
    if name.startswith("prep_"):
        d = load_json(path)
        return (f"{d['train']['documents']} train documents, {d['train']['tokens']} tokens; "
                f"held out {d['val']['documents']} documents, {d['val']['tokens']} tokens")
    if name.startswith("ppl_") or name.startswith("answer_loss_"):
        d = load_json(path)
        return (f"loss {d['loss']:.4f}, ppl {d['ppl']:.2f} ({d['tokens']} tokens, "
                f"{d['windows']} of {d['windows_total']} windows)")
    if name.startswith("train_"):
        run = run_dir_of(st["command"])
        m = last_metrics(run)
        cfg = load_json(os.path.join(run, "config.json"))
        partial = os.path.exists(os.path.join(out, name + ".partial"))
        text = (f"{m['step']} of {cfg['steps']} steps, {m['tokens']} tokens, last loss "
                f"{m['loss']:.4f}, {m['tok_per_s']:.0f} tok/s")
        return text + (" (stopped by its time budget: the last checkpoint is evaluated)"
                       if partial else "")
    if name == "suite":
        d = load_json(os.path.join(out, "suite", "results.json"))
        n = sum(t["n"] for t in d["tasks"])
        a, mc = d["average"], d["mcnemar_all"]
        return (f"{n} items; average acc {a['model']['acc']:.4f} -> {a['compared']['acc']:.4f}, "
                f"McNemar p {mc['p']:.3g} (all items)")
    if name == "preference_job":
        return dpo_numbers(load_json(os.path.join(out, "dpo", "eval_heldout.json")))
    return ""


def dpo_numbers(d):
    return (f"{d['pairs']} held-out pairs: reward accuracy {d['rewards/accuracies']:.3f}, "
            f"margin {d['rewards/margins']:.3f}, chosen NLL {d['ref_nll/chosen']:.4f} (SFT) -> "
            f"{d['nll/chosen']:.4f} (DPO)")


def cell(text):
    return text.replace("|", "\\|")


def pct(before, after):
    return f"{100.0 * (after - before) / before:+.1f}%"


def main():
    out, dpo_dir, dpo_mode = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(os.path.join(out, "times.tsv"), newline="") as f:
        stages = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    by_name = {s["stage"]: s for s in stages}

    print("| row | stage | command | wall s | load | numbers |")
    print("|---|---|---|---:|---:|---|")
    for s in stages:
        print(f"| {ROWS[s['row']]} | {s['stage']} | `{cell(s['command'])}` | {s['seconds']} | "
              f"{s['load1']} | {cell(describe(out, s))} |")
    if dpo_mode == "reuse":
        heldout = os.path.join(dpo_dir, "eval_heldout.json")
        if os.path.exists(heldout):
            with open(os.path.join(dpo_dir, "times.tsv")) as f:
                secs = {k: v for k, v in (line.split("\t") for line in f.read().split("\n")[1:]
                                          if line)}
            print(f"| 3 DPO | preference_job (reused: {dpo_dir}) | `bench/preference_job.sh "
                  f"BUILD .cache/results` | {sum(float(v) for v in secs.values()):.1f} | | "
                  f"{cell(dpo_numbers(load_json(heldout)))} |")
        else:
            print(f"| 3 DPO | preference_job | not run ({dpo_dir}/eval_heldout.json absent; "
                  "DPO=run runs it) | | | |")

    ppl = {k: load_json(os.path.join(out, s["output"]))["ppl"]
           for k, s in by_name.items() if k.startswith("ppl_")}
    print("\n**Row 1, domain adaptation** (held-out perplexity, goal: PubMed at least 30% lower,"
          " general within 5%)\n")
    print("| run | PubMed before | after | change | general before | after | change |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run, label in (("dapt_noreplay", "no replay"), ("dapt_replay", "10% general replay")):
        if f"ppl_pubmed_{run}" not in ppl:
            continue
        pb, pa = ppl["ppl_pubmed_base"], ppl[f"ppl_pubmed_{run}"]
        gb, ga = ppl["ppl_general_base"], ppl[f"ppl_general_{run}"]
        print(f"| {label} | {pb:.2f} | {pa:.2f} | {pct(pb, pa)} | {gb:.2f} | {ga:.2f} | "
              f"{pct(gb, ga)} |")

    if "answer_loss_sft" in by_name:
        lb = load_json(os.path.join(out, by_name["answer_loss_base"]["output"]))["loss"]
        la = load_json(os.path.join(out, by_name["answer_loss_sft"]["output"]))["loss"]
        print(f"\n**Row 2, instruction tuning**: held-out answer loss {lb:.4f} -> {la:.4f} "
              f"({pct(lb, la)})\n")
    if "suite" in by_name:
        d = load_json(os.path.join(out, "suite", "results.json"))
        print("| task | n | acc base [95% CI] | acc SFT [95% CI] | diff | McNemar b/c | p |")
        print("|---|---:|---|---|---:|---:|---:|")
        for t in d["tasks"]:
            m, c, mc = t["model"], t["compared"], t["mcnemar"]
            print(f"| {t['task']} | {t['n']} | {m['acc']:.3f} [{m['ci95'][0]:.3f}, "
                  f"{m['ci95'][1]:.3f}] | {c['acc']:.3f} [{c['ci95'][0]:.3f}, "
                  f"{c['ci95'][1]:.3f}] | {c['acc'] - m['acc']:+.3f} | {mc['b']}/{mc['c']} | "
                  f"{mc['p']:.3g} |")
        a, mc = d["average"], d["mcnemar_all"]
        print(f"| average / all items | {sum(t['n'] for t in d['tasks'])} | "
              f"{a['model']['acc']:.3f} | {a['compared']['acc']:.3f} | "
              f"{a['compared']['acc'] - a['model']['acc']:+.3f} | {mc['b']}/{mc['c']} | "
              f"{mc['p']:.3g} |")

    projections(out, by_name, dpo_dir)


# bench/bench_train.sh on the idle machine (bench/README.md, 2026-11-25): medtune's LoRA step on
# the SmolLM2-135M shape, 4 x 256, 2 threads.
BENCH_RATE = 316.7


def projections(out, by_name, dpo_dir):
    """Row 4: the tokens of each measured training run at the benchmark rate of SmolLM2,
    scaled by training FLOPs per token to the 1B and 7B shapes (the same achieved FLOP/s,
    bench/scaling_model.py), and split over N data-parallel machines: steps / N optimizer steps
    of (tokens per step / rate + the gradient reduction at 10 Gb/s) (grad_accum 1: nothing
    overlaps; the global batch grows N-fold, as in scaling_model.py)."""
    recipes = []
    for name, s in by_name.items():
        if name.startswith("train_"):
            run = run_dir_of(s["command"])
            m = last_metrics(run)
            cfg = load_json(os.path.join(run, "config.json"))
            recipes.append((name[len("train_"):], float(s["seconds"]), m["step"], m["tokens"],
                            cfg["batch"]["seq_len"]))
    if os.path.exists(os.path.join(dpo_dir, "dpo", "metrics.jsonl")):
        m = last_metrics(os.path.join(dpo_dir, "dpo"))
        cfg = load_json(os.path.join(dpo_dir, "dpo", "config.json"))
        recipes.append(("dpo", m["elapsed_s"], m["step"], m["tokens"], cfg["batch"]["seq_len"]))
    if not recipes:
        return
    print(f"\n**Row 4, projections** (minutes; the run's tokens at the benchmark rate, "
          f"{BENCH_RATE} tok/s on SmolLM2-135M, scaled by training FLOPs per token; on N "
          f"machines: steps / N x (step + reduction at 10 Gb/s))\n")
    print("| recipe | steps | tokens | measured here (135M) | 135M at bench rate | 1B | 7B | "
          "1B on 8 | 7B on 8 | 7B on 32 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    chunk = 4 * (1 << 18)
    for name, secs, steps, tokens, seq in recipes:
        base = flops_per_token(SHAPES["SmolLM2-135M"], seq)
        cells = [f"{secs / 60:.1f}", f"{tokens / BENCH_RATE / 60:.1f}"]
        rate = {}
        for shape in ("1B (TinyLlama-1.1B)", "7B (Llama-2-7B)"):
            rate[shape] = BENCH_RATE * base / flops_per_token(SHAPES[shape], seq)
            cells.append(f"{tokens / rate[shape] / 60:.1f}")
        for shape, n in (("1B (TinyLlama-1.1B)", 8), ("7B (Llama-2-7B)", 8),
                         ("7B (Llama-2-7B)", 32)):
            bw = 10e9 / 8
            reduce_s = (3 * 4 * lora_params(SHAPES[shape], 16) / bw + (n - 1) * chunk / bw
                        + n * 30e-6)
            step_s = tokens / steps / rate[shape]
            cells.append(f"{math.ceil(steps / n) * (step_s + reduce_s) / 60:.1f}")
        print(f"| {name} | {steps} | {tokens} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
