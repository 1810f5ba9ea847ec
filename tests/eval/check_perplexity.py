"""medtune eval --shards against the PyTorch twin: the mean NLL over the trained targets of the
same windows (read from the shard files independently of medtune) within 1e-4, the same target
and window counts, with and without a LoRA adapter, all windows or evenly spaced ones. Always on
a random-weight GQA llama with the quickstart sample; also on tinystories-656k with the PubMed
sample when ../shared is there."""
import json
import math
import os
import sys

import torch

from eval_ref import HERE, fail, run, work_dir
from eval_lib import LLAMA, fresh_model
from fresh_lib import prep_sample, shared_or_none

sys.path.insert(0, os.path.join(HERE, "..", "train"))
from train_lib import prep_pubmed, read_split_words, stream_windows, write_peft_adapter  # noqa: E402
from llama import Twin, lora_init  # noqa: E402
from model_io import load_model  # noqa: E402

TOL = 1e-4
T = 64


def twin_nll(twin, windows):
    """(summed NLL, targets) over windows [(tokens, targets)] in fp64 sums of fp32 logits."""
    total, count = 0.0, 0
    for toks, tg in windows:
        tokens = torch.tensor([toks])
        with torch.no_grad():
            logits = twin.forward(tokens, torch.arange(T)[None], torch.zeros(1, T, dtype=torch.int64))[0]
        targets = torch.tensor(tg)
        keep = targets >= 0
        logp = torch.log_softmax(logits[keep].double(), dim=-1)
        total -= logp.gather(1, targets[keep][:, None]).sum().item()
        count += int(keep.sum())
    return total, count


def check(label, args, twin, windows):
    """medtune's loss of `args` against the twin's on `windows`; returns medtune's loss."""
    got = json.loads(run(args + ["--json"]).stdout)
    total, count = twin_nll(twin, windows)
    loss = total / count
    if got["tokens"] != count or got["windows"] != len(windows):
        fail(f"{label}: medtune counted {got['tokens']} targets in {got['windows']} windows, "
             f"twin {count} in {len(windows)}")
    if abs(got["loss"] - loss) > TOL or abs(got["ppl"] - math.exp(got["loss"])) > 1e-9 * got["ppl"]:
        fail(f"{label}: loss {got['loss']:.7f} ppl {got['ppl']:.5f}, twin loss {loss:.7f}")
    print(f"{label}: {count} targets in {len(windows)} windows, loss {got['loss']:.6f} "
          f"(twin {loss:.6f}, diff {abs(got['loss'] - loss):.1e}), ppl {got['ppl']:.3f}")
    return got["loss"]


def check_model(work, model, shards, b_std=0.05):
    cfg, weights = load_model(model)
    base = Twin(cfg, weights, {}, 1.0)

    val = stream_windows(read_split_words(shards, "val")[0], T)
    train = stream_windows(read_split_words(shards, "train")[0], T)
    cmd = ["eval", model, "--shards", shards, "--seq-len", str(T)]
    base_loss = check("val, all windows, batch 3", cmd + ["--batch", "3"], base, val)
    n = 7
    check("val, 7 evenly spaced windows", cmd + ["--max-windows", str(n)], base,
          [val[k * len(val) // n] for k in range(n)])
    check("train, 5 windows", cmd + ["--split", "train", "--max-windows", "5", "--batch", "2"],
          base, [train[k * len(train) // 5] for k in range(5)])

    r, alpha = 4, 8.0
    targets = ["q_proj", "v_proj", "down_proj"]
    lora = lora_init(cfg, r, targets, seed=3, b_std=b_std)
    adapter = write_peft_adapter(os.path.join(work, "adapter"), lora, r=r, lora_alpha=alpha,
                                 lora_dropout=0.1, target_modules=targets, bias="none",
                                 use_rslora=False, fan_in_fan_out=False)
    loss = check("val with a LoRA adapter", cmd + ["--adapter", adapter],
                 Twin(cfg, weights, lora, alpha / r), val)
    print(f"the adapter moves the val loss by {abs(loss - base_loss):.3g}")
    if not abs(loss - base_loss) > 10 * TOL:
        fail("the adapter hardly changes the loss: the check would not see it ignored")


def main():
    work = work_dir("perplexity_random")
    model = fresh_model(os.path.join(work, "random_llama"), LLAMA)
    print(f"random GQA llama, quickstart sample: {model}")
    # B ~ N(0, 1): this model's activations are O(1), so a smaller B would hardly move the loss.
    check_model(work, model, prep_sample(os.path.join(work, "shards"), model, val_fraction=0.2),
                b_std=1.0)
    shared = shared_or_none()
    if shared:
        work = work_dir("perplexity")
        model = os.path.join(shared, "models", "tinystories-656k")
        print(f"tinystories-656k, PubMed sample: {model}")
        check_model(work, model, prep_pubmed(shared, os.path.join(work, "shards"), model,
                                             val_fraction=0.2))
    print("OK")


if __name__ == "__main__":
    main()
