"""What a fresh clone has, for the tests that must run there (no ../shared): the sample data of
configs/quickstart/, small random-weight Hugging Face models written here with torch, a
byte-level BPE tokenizer trained here with Hugging Face `tokenizers` on that sample, and the
shard directories `medtune prep` makes of it. Nothing here comes from medtune's own writers,
so what a test compares medtune with stays independent of it."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import TESTS, quickstart_dir, run, shared_path  # noqa: E402,F401

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# 3 specials + 256 byte tokens + 138 merges: not a multiple of 8, as real vocabularies often
# are not, so padding and tail loops over V are exercised.
VOCAB = 397
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\\n' }}{% endif %}")

# Random model shapes: GQA, head_dim != hidden/heads, no size a multiple of 8.
LLAMA = {"arch": "llama", "hidden_size": 60, "intermediate_size": 100, "n_layers": 2,
         "n_heads": 4, "n_kv_heads": 2, "head_dim": 18, "vocab_size": VOCAB, "tie": False,
         "rope_theta": 10000.0, "rope_scaling": None, "dtype": "F32", "seed": 11,
         "max_position_embeddings": 512}
QWEN2 = dict(LLAMA, arch="qwen2", hidden_size=44, intermediate_size=90, n_heads=6,
             n_kv_heads=3, head_dim=10, tie=True, seed=12, rope_theta=1e6)


def shared_or_none():
    """$MEDTUNE_SHARED (or ../shared) when it exists, else None: the extra evidence a test adds
    when the shared folder is there."""
    d = shared_path()
    if os.path.isdir(d):
        return os.path.abspath(d)
    print(f"note: shared folder {d} is absent; only the fresh-clone cases run")
    return None


def sample_texts():
    """The quickstart's clinical paragraphs and every question and answer, in file order."""
    qs = quickstart_dir()
    texts = [p for p in open(os.path.join(qs, "clinical_notes.txt")).read().split("\n\n") if p]
    with open(os.path.join(qs, "medqa.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            texts += [rec["instruction"], rec["output"]]
    return texts


def write_tokenizer(out_dir, vocab=VOCAB, chat_template=True):
    """tokenizer.json (byte-level BPE trained by HF `tokenizers` on the sample), and
    tokenizer_config.json / special_tokens_map.json with a chatml template (or none). Ids 0..2
    are the specials, so bos <|im_start|> = 1 and eos <|im_end|> = 2 as make_model's config
    says."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sample_texts(), trainer)
    if tok.get_vocab_size() != vocab:
        raise RuntimeError(f"trained vocabulary has {tok.get_vocab_size()} tokens, not {vocab}")
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    specials = {"bos_token": SPECIALS[1], "eos_token": SPECIALS[2], "pad_token": SPECIALS[0]}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        conf = dict(specials, model_max_length=512, tokenizer_class="PreTrainedTokenizerFast")
        if chat_template:
            conf["chat_template"] = CHATML
        json.dump(conf, f, indent=1)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump(specials, f, indent=1)
    return out_dir


def fresh_model(out_dir, spec=None, chat_template=True, **changes):
    """A random-weight HF model directory (twin/make_model.py weights, LLAMA unless `spec`
    is given, with `changes` applied) with the trained tokenizer and a generation_config."""
    # Imported here: torch makes a process large, and export_merge_rss measures the peak RSS of
    # a child its driver forks, which starts as a copy of the driver.
    sys.path.insert(0, os.path.join(TESTS, "twin"))
    from make_model import write_model
    spec = dict(spec or LLAMA, **changes)
    write_model(spec, out_dir)
    write_tokenizer(out_dir, spec["vocab_size"], chat_template)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": 2}, f, indent=1)
    return out_dir


def prep_sample(out_dir, tokenizer, val_fraction=0.1, chat=False):
    """Shards of the quickstart sample: the clinical notes and the Q&A pairs as plain text
    (every token trained), or with chat=True the pairs in the tokenizer's chat template
    (answers trained) and no notes."""
    qs = quickstart_dir()
    if chat:
        inputs = [{"path": os.path.join(qs, "medqa.jsonl"), "format": "alpaca"}]
    else:
        inputs = [{"path": os.path.join(qs, "clinical_notes.txt"), "format": "text"},
                  {"path": os.path.join(qs, "medqa.jsonl"), "format": "jsonl",
                   "text_field": "output"},
                  {"path": os.path.join(qs, "medqa.jsonl"), "format": "jsonl",
                   "text_field": "instruction"}]
    cfg = os.path.join(os.path.dirname(out_dir), os.path.basename(out_dir) + "_prep.json")
    with open(cfg, "w") as f:
        json.dump({"tokenizer": tokenizer, "inputs": inputs, "val_fraction": val_fraction,
                   "out_dir": out_dir}, f, indent=1)
    run(["prep", cfg])
    return out_dir


def fresh_training_data(work, **changes):
    """(model, text shards, chat shards) in `work`: a fresh_model (LLAMA with `changes`), the
    sample as plain text for training and its Q&A pairs in the chat template as a second shard
    set, so a replay mix draws from another source than the train set."""
    model = fresh_model(os.path.join(work, "model"), **changes)
    return (model, prep_sample(os.path.join(work, "shards"), model),
            prep_sample(os.path.join(work, "chat"), model, chat=True))
