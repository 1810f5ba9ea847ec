"""Token ids that do not fit the model are refused where shards are read, with one error line
naming the file, by `medtune eval --shards` and by `medtune train` (its train and val splits):
- a shard holding an id equal to the vocabulary size (a valid shard otherwise: frames, CRCs,
  manifest sha256 all rewritten), named by its shard file;
- a manifest whose tokenizer.vocab_size is larger than the model's vocabulary, named by its
  manifest.json.
Runs on a tiny model and tokenizer written here (no ../shared needed)."""
import json
import os
import shutil

from eval_lib import (fail, prep_text, rewrite_shard, run, tiny_model_with_tokenizer, work_dir,
                      write_json)
from testlib import expect_error

TOKEN_MASK = 0x3FFFFFFF


def with_id(vocab, at):
    """An edit for rewrite_shard: word `at` gets token id `vocab`, its flags kept."""
    def edit(words):
        words = list(words)
        words[at] = (words[at] & ~TOKEN_MASK) | vocab
        return words
    return edit


def copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def train_config(work, name, model, shards):
    return write_json(os.path.join(work, name + ".json"),
                      {"model": model, "data": {"train": shards},
                       "lora": {"r": 2, "dropout": 0.0},
                       "batch": {"micro_batch": 2, "seq_len": 16}, "steps": 3, "eval_every": 1,
                       "eval_batches": 2, "save_every": 3, "threads": 1,
                       "out_dir": os.path.join(work, name + "_run")})


def main():
    work = work_dir("vocab_ids")
    model = tiny_model_with_tokenizer(os.path.join(work, "model"))
    vocab = json.load(open(os.path.join(model, "config.json")))["vocab_size"]
    good = prep_text(os.path.join(work, "shards"), model)
    manifest = json.load(open(os.path.join(good, "manifest.json")))
    if manifest["tokenizer"]["vocab_size"] != vocab:
        fail(f"prep recorded vocab_size {manifest['tokenizer']['vocab_size']}, model {vocab}")
    run(["eval", model, "--shards", good, "--seq-len", "16"])

    # A token in the middle of the split: every window reading that frame meets it.
    bad_val = copy(good, os.path.join(work, "bad_val"))
    n_val = manifest["splits"]["val"]["shards"][0]["n_tokens"]
    rewrite_shard(bad_val, "val-00000.mtshard", with_id(vocab, n_val // 2))
    expect_error(["eval", model, "--shards", bad_val, "--seq-len", "16"], "val-00000.mtshard",
                 f"id {vocab}")
    expect_error(["train", train_config(work, "train_bad_val", model, bad_val)],
                 "val-00000.mtshard", f"id {vocab}", only=False)

    bad_train = copy(good, os.path.join(work, "bad_train"))
    n_train = manifest["splits"]["train"]["shards"][0]["n_tokens"]
    rewrite_shard(bad_train, "train-00000.mtshard", with_id(vocab, n_train // 3))
    expect_error(["eval", model, "--shards", bad_train, "--seq-len", "16", "--split", "train"],
                 "train-00000.mtshard", f"id {vocab}")
    conf = train_config(work, "train_bad_train", model, bad_train)
    # Enough steps to read every train window (the first steps may not reach the bad frame's
    # windows in a shuffled order; the frame is decoded with the first window that needs it).
    cfg = json.load(open(conf))
    cfg["steps"] = n_train // 16 + 1
    write_json(conf, cfg)
    expect_error(["train", conf], "train-00000.mtshard", f"id {vocab}", only=False)

    larger = copy(good, os.path.join(work, "larger_vocab"))
    m = json.load(open(os.path.join(larger, "manifest.json")))
    m["tokenizer"]["vocab_size"] = vocab + 1
    write_json(os.path.join(larger, "manifest.json"), m)
    expect_error(["eval", model, "--shards", larger, "--seq-len", "16"],
                 os.path.join(larger, "manifest.json"), str(vocab + 1), str(vocab))
    expect_error(["train", train_config(work, "train_larger", model, larger)],
                 os.path.join(larger, "manifest.json"), str(vocab + 1), str(vocab))
    print("OK")


if __name__ == "__main__":
    main()
