"""Bad input to medtune eval: one line "medtune: error: ..." on stderr, nothing on stdout and
exit 1 (or exit 2 for usage errors), never a crash. Always with two random-weight llamas of
different shapes and tokenizers and the sample benchmark files; with ../shared the same
refusals again with stories260K, tinystories-656k and the real benchmark files."""
import json
import os
import sys

from eval_ref import HERE, dataset_paths, fail, run, work_dir
from eval_lib import LLAMA, fresh_model, sample_benchmarks
from fresh_lib import prep_sample, shared_or_none

sys.path.insert(0, os.path.join(HERE, "..", "train"))
from train_lib import prep_pubmed, write_peft_adapter  # noqa: E402
from llama import lora_init  # noqa: E402
from model_io import load_model  # noqa: E402


def refused(label, args, want, code=1):
    p = run(args, expect=None)
    lines = p.stderr.strip().splitlines()
    if p.returncode != code:
        fail(f"{label}: exit {p.returncode}, expected {code}\nstderr: {p.stderr[-1500:]}")
    if code == 1 and (len(lines) != 1 or not lines[0].startswith("medtune: error: ") or p.stdout):
        fail(f"{label}: expected one error line and no output, got stderr {p.stderr!r} "
             f"stdout {p.stdout[:300]!r}")
    if want not in p.stderr:
        fail(f"{label}: {want!r} not in {p.stderr.strip()!r}")
    print(f"{label}: {lines[0]}")


def check_refusals(work, model, other, paths, shards):
    """Refusals of `model` given benchmark `paths` and `shards` of its tokenizer; `other` is a
    model of other shapes and another tokenizer."""
    def write(name, text):
        path = os.path.join(work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    refused("unknown format", ["eval", model, "--mcq", paths["medqa"], "--format", "usmle"],
            "unknown format")
    refused("malformed file", ["eval", model, "--mcq", write("bad.jsonl", "{oops\n[1,2]\n"),
                               "--format", "medqa"], "bad.jsonl: no valid medqa record (2 malformed")
    refused("empty file", ["eval", model, "--mcq", write("empty.jsonl", ""), "--format", "medmcqa"],
            "empty.jsonl: no medmcqa record")
    refused("broken JSON", ["eval", model, "--mcq", write("pq.json", '{"1": {"QUESTION": "q",\n'),
                            "--format", "pubmedqa"], "pq.json:1:24: not valid JSON")
    refused("undetectable format", ["eval", model, "--mcq", write("x.txt", "hello\n")],
            "give --format")
    refused("missing file", ["eval", model, "--mcq", os.path.join(work, "nope.jsonl"),
                             "--format", "medqa"], "nope.jsonl")
    refused("gold with medqa", ["eval", model, "--mcq", paths["medqa"], "--format", "medqa",
                                "--gold", paths["medqa"]], "PubMedQA only")
    refused("gold PMID absent", ["eval", model, "--mcq", paths["pubmedqa"], "--gold",
                                 write("gold.json", json.dumps({"1": "yes"}))], "PMID 1 is not in")
    os.makedirs(os.path.join(work, "no_csv"))
    refused("MMLU dir without csv", ["eval", model, "--mcq", os.path.join(work, "no_csv"),
                                     "--format", "mmlu"], "no .csv file")
    refused("unwritable --out", ["eval", model, "--mcq", paths["medqa"], "--limit", "1", "--out",
                                 os.path.join(work, "missing_dir", "r.jsonl")], "missing_dir")
    refused("not an adapter", ["eval", model, "--adapter", other,
                               "--mcq", paths["pubmedqa"], "--limit", "1"], "adapter_config.json")
    cfg, _ = load_model(other)
    lora = lora_init(cfg, 2, ["q_proj"], seed=1)
    adapter = write_peft_adapter(os.path.join(work, "adapter_other"), lora, r=2, lora_alpha=4,
                                 target_modules=["q_proj"])
    refused("adapter of another model", ["eval", model, "--adapter", adapter, "--mcq",
                                         paths["pubmedqa"], "--limit", "1"], "adapter_model.safetensors")

    refused("tokenizer mismatch", ["eval", other, "--shards", shards], "different tokenizer")
    refused("no shards", ["eval", model, "--shards", work], "manifest.json")
    refused("window longer than the split", ["eval", model, "--shards", shards, "--seq-len",
                                             "1000000"], "not one window")

    refused("usage: both modes", ["eval", model, "--shards", shards, "--mcq", paths["medqa"]],
            "one of --shards", code=2)
    refused("usage: bad split", ["eval", model, "--shards", shards, "--split", "test"],
            "--split", code=2)
    refused("usage: bad number", ["eval", model, "--shards", shards, "--batch", "0"],
            "--batch", code=2)
    refused("usage: missing value", ["eval", model, "--mcq"], "needs a value", code=2)
    p = run(["eval", "--help"])
    for opt in ("--adapter", "--shards", "--split", "--seq-len", "--batch", "--max-windows",
                "--json", "--mcq", "--format", "--gold", "--limit", "--max-len", "--add-special",
                "--out"):
        if opt not in p.stdout:
            fail(f"--help does not list {opt}")


def main():
    work = work_dir("refusals_random")
    model = fresh_model(os.path.join(work, "random_llama"), LLAMA)
    other = fresh_model(os.path.join(work, "other_llama"), LLAMA, hidden_size=48, vocab_size=331,
                        seed=21)
    check_refusals(work, model, other, sample_benchmarks(os.path.join(work, "sample")),
                   prep_sample(os.path.join(work, "shards"), model))
    shared = shared_or_none()
    if shared:
        work = work_dir("refusals")
        models = os.path.join(shared, "models")
        model = os.path.join(models, "stories260K")
        check_refusals(work, model, os.path.join(models, "tinystories-656k"),
                       dataset_paths(shared),
                       prep_pubmed(shared, os.path.join(work, "shards"), model))
    print("OK")


if __name__ == "__main__":
    main()
