"""medtune eval --shards scores packed chat documents each on its own (document attention), as
training does with doc_attention: document, so one adapter has one held-out loss: eval's loss
over the val split equals training's val loss (metrics.jsonl, all val windows evaluated, same
seq_len and rows per forward pass) before the first step (base model) and after the last
(adapter). --doc-attention causal scores the packed documents as one sequence: another loss.
Runs on a tiny model and tokenizer written here (no ../shared needed)."""
import json
import os

from eval_lib import fail, run, tiny_model_with_tokenizer, work_dir, write_json

T, ROWS = 256, 2

QA = [
    ("What does an HbA1c of 8% mean?", "Average glucose over three months is about 10 mmol/L."),
    ("How is warfarin monitored?", "By the INR, usually aiming for 2 to 3."),
    ("What is first-line therapy for type 2 diabetes?", "Metformin, unless contraindicated."),
    ("Which vaccine prevents cervical cancer?", "The HPV vaccine."),
    ("What lowers LDL cholesterol most?", "Statins, then ezetimibe or PCSK9 inhibitors."),
    ("What is a normal resting heart rate?", "Between 60 and 100 beats per minute."),
    ("Name a loop diuretic.", "Furosemide."),
    ("What does TSH measure?", "Thyroid-stimulating hormone, high in hypothyroidism."),
]


def main():
    work = work_dir("doc_attention")
    model = tiny_model_with_tokenizer(os.path.join(work, "model"))
    data = os.path.join(work, "qa.jsonl")
    with open(data, "w") as f:
        for k in range(6):
            for q, a in QA:
                f.write(json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                                 {"role": "user", "content": f"{q} ({k})"},
                                                 {"role": "assistant", "content": a}]}) + "\n")
    shards = os.path.join(work, "shards")
    run(["prep", write_json(os.path.join(work, "prep.json"),
                            {"tokenizer": model, "inputs": [{"path": data, "format": "messages"}],
                             "template": "alpaca", "val_fraction": 0.3, "out_dir": shards})])
    manifest = json.load(open(os.path.join(shards, "manifest.json")))
    if manifest["packing"] != "whole":
        fail(f"chat shards have packing {manifest['packing']!r}")
    val = manifest["splits"]["val"]
    if val["n_tokens"] < 3 * (T + 1) or val["n_tokens"] / val["n_docs"] > T / 2:
        fail(f"the val split ({val['n_docs']} documents, {val['n_tokens']} tokens) does not pack "
             f"several documents into each of several windows of {T}")
    out = os.path.join(work, "run")
    conf = write_json(os.path.join(work, "train.json"),
                      {"model": model, "data": {"train": shards},
                       "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
                       "optim": {"lr": 0.01}, "batch": {"micro_batch": ROWS, "seq_len": T},
                       "steps": 4, "eval_every": 4, "eval_batches": 1000, "save_every": 4,
                       "doc_attention": "document", "threads": 1, "out_dir": out})
    run(["train", conf])
    vals = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    vals = [(r["step"], r["val_loss"]) for r in vals if r.get("val_loss") is not None]
    if len(vals) < 2 or vals[0][0] != 0 or vals[-1][0] != 4:
        fail(f"metrics.jsonl val losses {vals}: expected steps 0 and 4")
    cmd = ["eval", model, "--shards", shards, "--seq-len", str(T), "--batch", str(ROWS), "--json"]
    for label, extra, want in [("base", [], vals[0][1]),
                               ("adapter", ["--adapter", os.path.join(out, "adapter")], vals[-1][1])]:
        got = json.loads(run(cmd + extra).stdout)
        if abs(got["loss"] - want) > 1e-6:
            fail(f"{label}: eval --shards loss {got['loss']:.7f}, training's val loss {want:.7f}")
        if got.get("doc_attention") != "document" or got["windows"] != got["windows_total"]:
            fail(f"{label}: eval used {got.get('doc_attention')} attention on {got['windows']} "
                 f"of {got['windows_total']} windows")
        causal = json.loads(run(cmd + extra + ["--doc-attention", "causal"]).stdout)
        if causal["doc_attention"] != "causal" or abs(causal["loss"] - want) < 1e-4:
            fail(f"{label}: --doc-attention causal gave {causal}")
        print(f"{label}: eval loss {got['loss']:.6f} = training val loss {want:.6f} over "
              f"{got['windows']} windows ({got['tokens']} targets); causal: {causal['loss']:.6f}")
    print("OK")


if __name__ == "__main__":
    main()
