"""Runs inside the oracle venv (lm_eval 0.4.13, transformers, torch; see check_lm_eval.py):
lm-evaluation-harness's own task definitions (medqa_4options, medmcqa, pubmedqa, mmlu_anatomy,
included from its installed task folder) pointed at local JSON lines files, scored by its
Hugging Face model in float32 on the CPU. Prints one JSON object: per task the per-document
log-likelihoods, targets, and the harness's acc / acc_norm.
usage: python lm_eval_side.py RUNS_JSON, RUNS_JSON = [[MODEL_DIR, WORK_DIR, {task: docs}], ...]
(one process for every model: importing torch and lm_eval costs more than scoring)."""
import json
import os
import sys

import lm_eval
import yaml
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from transformers import PreTrainedTokenizerFast

TASK_YAML = {  # our task -> the harness's task file it includes
    "medqa": "medqa/medqa.yaml",
    "medmcqa": "medmcqa/medmcqa.yaml",
    "pubmedqa": "pubmedqa/pubmedqa.yaml",
    "mmlu_anatomy": "mmlu/default/mmlu_anatomy.yaml",
}


def score(model_dir, work, tasks):
    root = os.path.join(os.path.dirname(lm_eval.__file__), "tasks")
    inc = os.path.join(work, "tasks")
    os.makedirs(inc, exist_ok=True)
    names = []
    for name, docs in tasks.items():
        task = f"medtune_anchor_{name}"
        cfg = {"include": os.path.join(root, TASK_YAML[name]), "task": task,
               "dataset_path": "json", "dataset_name": None,
               "dataset_kwargs": {"data_files": {"test": docs}},
               "training_split": None, "validation_split": None, "test_split": "test",
               "fewshot_split": None, "fewshot_config": None, "tag": None,
               "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                               {"metric": "acc_norm", "aggregation": "mean",
                                "higher_is_better": True}]}
        with open(os.path.join(inc, task + ".yaml"), "w") as f:
            yaml.safe_dump(cfg, f)
        names.append(task)
    # The tokenizer is the model directory's tokenizer.json as HF `tokenizers` reads it: for
    # Llama-class directories transformers 5 rebuilds a tokenizer from the vocabulary instead,
    # which tokenizes some text differently from tokenizer.json (tinystories-656k: "38°C").
    special = json.load(open(os.path.join(model_dir, "tokenizer_config.json")))
    names_of = {k: special.get(k) for k in ("bos_token", "eos_token", "unk_token")}
    names_of = {k: (v["content"] if isinstance(v, dict) else v) for k, v in names_of.items() if v}
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"),
                                  **names_of)
    lm = HFLM(pretrained=model_dir, tokenizer=tok, dtype="float32", add_bos_token=False,
              batch_size=1, device="cpu")
    res = lm_eval.simple_evaluate(
        model=lm, tasks=names, batch_size=1, device="cpu", log_samples=True,
        task_manager=TaskManager(include_path=inc, include_defaults=False), random_seed=0)
    out = {}
    for name in tasks:
        task = f"medtune_anchor_{name}"
        samples = sorted(res["samples"][task], key=lambda s: s["doc_id"])
        out[name] = {
            "acc": res["results"][task]["acc,none"],
            "acc_norm": res["results"][task]["acc_norm,none"],
            "docs": [{"doc_id": s["doc_id"], "target": s["target"],
                      "ll": [float(r[0]) for r in s["filtered_resps"]],
                      "acc": s["acc"], "acc_norm": s["acc_norm"]} for s in samples]}
    return out


def main():
    print("LM_EVAL_JSON " + json.dumps([score(*r) for r in json.loads(sys.argv[1])]))


if __name__ == "__main__":
    main()
