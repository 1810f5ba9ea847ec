"""Runs in the oracle venv (TRL 1.16, PEFT, transformers), started by check_pref_trl.py with a
JSON spec on stdin: trains the PEFT model (base + init adapter) for the given steps with TRL's
own loss code (DPOTrainer.compute_loss; ORPOTrainer.get_batch_loss_metrics, trl.experimental)
and torch's AdamW on the given token ids, and prints JSON: each step's loss and TRL's
metrics, the first step's LoRA gradients, and the largest difference between pref_ref.py's
formulas and TRL's on the same log-probabilities."""
import json
import os
import sys
import tempfile
import warnings

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
warnings.filterwarnings("ignore")
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from peft import PeftModel  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pref_ref as R  # noqa: E402

hf_logging.set_verbosity_error()
DPO_KEYS = ["rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
            "logps/chosen", "logps/rejected"]
ORPO_KEYS = DPO_KEYS + ["nll_loss", "log_odds_ratio", "log_odds_chosen"]


def load(spec):
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    model = PeftModel.from_pretrained(model, spec["adapter"], is_trainable=True)
    tok = AutoTokenizer.from_pretrained(spec["model"])
    return model, tok


def collate(spec, micro):
    from trl.trainer.dpo_trainer import DataCollatorForPreference
    coll = DataCollatorForPreference(pad_token_id=spec["pad"], max_length=spec["T"] + 1)
    return coll([{"prompt_ids": p, "chosen_ids": c, "rejected_ids": r} for p, c, r in micro])


def dpo_trainer(spec, model, tok, out):
    from trl import DPOConfig, DPOTrainer
    c = spec["case"]
    # TRL 1.16's "sigmoid" has no label smoothing; with one pair per micro-batch its
    # "aot_unpaired" (which sorts the log-ratios over the batch) is conservative DPO exactly.
    loss_type = "aot_unpaired" if c.get("label_smoothing") else c.get("loss", "sigmoid")
    args = DPOConfig(output_dir=out, beta=c["beta"], loss_type=[loss_type],
                     label_smoothing=c.get("label_smoothing", 0.0), report_to=[],
                     per_device_train_batch_size=c["P"], max_length=spec["T"] + 1,
                     use_cpu=True, disable_dropout=True)
    ds = Dataset.from_list([{"prompt": "a", "chosen": "b", "rejected": "c"}])
    return DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)


def orpo_trainer(spec, model, tok, out):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    args = ORPOConfig(output_dir=out, beta=spec["case"]["beta"], report_to=[],
                      per_device_train_batch_size=spec["case"]["P"], max_length=spec["T"] + 1,
                      use_cpu=True, disable_dropout=True)
    ds = Dataset.from_list([{"prompt": "a", "chosen": "b", "rejected": "c"}])
    return ORPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)


def orpo_batch(inputs):
    """ORPOTrainer's batch keys from the collated rows: labels are the completion tokens."""
    ids, att, comp = inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
    P = ids.shape[0] // 2
    labels = ids.masked_fill(comp == 0, -100)
    return {"chosen_input_ids": ids[:P], "chosen_attention_mask": att[:P],
            "chosen_labels": labels[:P], "rejected_input_ids": ids[P:],
            "rejected_attention_mask": att[P:], "rejected_labels": labels[P:]}


def ref_formulas(spec, model, inputs, trl_loss, trl_metrics):
    """pref_ref.py's loss and metrics on this model's log-probabilities, minus TRL's."""
    from trl.trainer.utils import use_adapter
    c = spec["case"]
    ids, att, comp = inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
    tg = torch.where(att[:, 1:] == 1, ids[:, 1:], torch.full_like(ids[:, 1:], -1))
    resp = comp[:, 1:].double()
    with torch.no_grad():
        lp = R.token_logps(model(input_ids=ids, attention_mask=att).logits[:, :-1].double(), tg)
        sums = (lp * resp).sum(1)
        if c["objective"] == "orpo":
            P = ids.shape[0] // 2
            avg = sums / resp.sum(1)
            nll_mask = (tg[:P] >= 0).double()
            nll = -(lp[:P] * nll_mask).sum() / nll_mask.sum()
            per_pair, ratio, log_odds = R.orpo_terms(avg, c["beta"])
            loss = nll + per_pair.mean()
            mets = R.orpo_metrics(avg, nll, c["beta"], ratio, log_odds)
        else:
            name = "ref" if "ref" in model.peft_config else None
            with use_adapter(model, adapter_name=name):
                rlp = R.token_logps(model(input_ids=ids, attention_mask=att).logits[:, :-1]
                                    .double(), tg)
            ref = (rlp * resp).sum(1)
            loss = R.dpo_losses(sums, ref, comp.sum(1).double(), c["beta"],
                                c.get("loss", "sigmoid"), c.get("label_smoothing", 0.0)).mean()
            mets = R.dpo_metrics(sums, ref, c["beta"])
    diffs = [abs(loss.item() - trl_loss)] + [abs(mets[k] - trl_metrics[k]) for k in mets]
    return max(diffs)


def main():
    spec = json.load(sys.stdin)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    c = spec["case"]
    model, tok = load(spec)
    with tempfile.TemporaryDirectory() as out:
        orpo = c["objective"] == "orpo"
        trainer = (orpo_trainer if orpo else dpo_trainer)(spec, model, tok, out)
        model = trainer.model
        model.train()
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        opt = torch.optim.AdamW(params.values(), lr=spec["lr"], betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=0.0)
        steps, grads, formula_diff = [], None, 0.0
        for micro_batches in spec["steps"]:
            opt.zero_grad(set_to_none=True)
            total, mets = 0.0, {}
            for micro in micro_batches:
                inputs = collate(spec, micro)
                if orpo:
                    loss, m = trainer.get_batch_loss_metrics(model, orpo_batch(inputs), "train")
                else:
                    trainer._metrics["train"].clear()
                    loss = trainer.compute_loss(model, inputs)
                    m = {k: v[-1] for k, v in trainer._metrics["train"].items()}
                formula_diff = max(formula_diff, ref_formulas(spec, model, inputs, loss.item(), m))
                (loss / len(micro_batches)).backward()
                total += loss.item() / len(micro_batches)
                for k in (ORPO_KEYS if orpo else DPO_KEYS):
                    mets[k] = mets.get(k, 0.0) + m[k] / len(micro_batches)
            if grads is None:
                grads = {n.replace(".default", ""): p.grad.detach().double().flatten().tolist()
                         for n, p in params.items()}
            opt.step()
            steps.append(dict(mets, loss=total))
    json.dump({"steps": steps, "grads": grads, "formula_diff": formula_diff}, sys.stdout)


if __name__ == "__main__":
    main()
