#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses (tests/fuzz/fuzz_<parser>.c, docs/fuzzing.md).

    make_seeds.py --medtune BIN --out DIR [--shared DIR]

DIR/<parser>/ receives small real files of each format, prefixed with the selector byte the
harness expects. They are produced by the libraries that define the formats (safetensors,
gguf-py, Hugging Face tokenizers), by medtune's own writers (shards, state.h5, metrics.jsonl
from a tiny quickstart run and a tiny prep/train run), and from the configs and sample data of
this repository. With --shared (the ../shared folder) excerpts of the real models, tokenizers
and corpora are added as well: those are generated at campaign time and never committed.
The committed corpus tests/fuzz/corpus/ is this script's output without --shared."""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.normpath(os.path.join(HERE, "..", ".."))


class Corpus:
    def __init__(self, out):
        self.out = out

    def add(self, parser, name, data, prefix=b""):
        d = os.path.join(self.out, parser)
        os.makedirs(d, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, name), "wb") as f:
            f.write(prefix + data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- safetensors ----------------------------------------------------------------------------

# The tiny fuzz model (1 layer, tied embeddings) and how fuzz_safetensors.c splits it: the
# tensors sorted by name, the first half in shard 1.
TINY_TENSORS = sorted(["model.embed_tokens.weight", "model.norm.weight"] + [
    f"model.layers.0.{n}.weight" for n in (
        "input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj",
        "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")])


def safetensors_seeds(c, work):
    import torch
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(1)
    files = {
        "floats": ({"a.weight": torch.randn(2, 3, generator=g),
                    "b.half": torch.randn(4, generator=g).half(),
                    "c.bf16": torch.randn(2, 2, generator=g).bfloat16()}, {"format": "pt"}),
        "ints": ({"ids": torch.arange(5, dtype=torch.int64), "i32": torch.arange(3, dtype=torch.int32),
                  "bytes": torch.arange(7, dtype=torch.uint8), "scalar": torch.tensor(1.5),
                  "empty": torch.zeros(0, 3)}, {"note": "dropped", "b": "a.weight"}),
        "lora": ({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.randn(2, 16, generator=g),
                  "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.zeros(16, 2)}, None),
    }
    for name, (tensors, meta) in files.items():
        path = os.path.join(work, name + ".safetensors")
        save_file(tensors, path, metadata=meta)
        c.add("safetensors", "header_" + name, read(path), b"\x00")
    half = len(TINY_TENSORS) // 2
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = {t: shards[0 if i < half else 1] for i, t in enumerate(TINY_TENSORS)}
    c.add("safetensors", "index_sharded", json.dumps(
        {"metadata": {"total_size": 123456}, "weight_map": weight_map}, indent=2), b"\x01")
    c.add("safetensors", "index_one_file", json.dumps(
        {"weight_map": {t: shards[0] for t in TINY_TENSORS[:half]}}), b"\x01")


# ---- GGUF -----------------------------------------------------------------------------------

def gguf_model_seed(path):
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("fuzz-seed")
    w.add_context_length(64)
    w.add_embedding_length(32)
    w.add_block_count(1)
    w.add_feed_forward_length(64)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(40)
    w.add_bool("fuzz.flag", True)
    w.add_array("fuzz.ints", [1, -2, 3])
    w.add_array("fuzz.floats", [0.5, 1.5])
    w.add_array("fuzz.strings", ["a", "bc", ""])
    w.add_uint64("fuzz.u64", 2 ** 40)
    w.add_float64("fuzz.f64", 0.25)
    w.add_int8("fuzz.i8", -3)
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 32)).astype(np.float32)
    w.add_tensor("token_embd.weight", rng.standard_normal((40, 32)).astype(np.float32))
    w.add_tensor("f32", a)
    w.add_tensor("f16", a.astype(np.float16))
    for name, q in (("q8_0", gguf.GGMLQuantizationType.Q8_0), ("q4_0", gguf.GGMLQuantizationType.Q4_0),
                    ("q4_1", gguf.GGMLQuantizationType.Q4_1), ("bf16", gguf.GGMLQuantizationType.BF16)):
        try:
            w.add_tensor(name, gguf.quants.quantize(a, q), raw_dtype=q)
        except (NotImplementedError, gguf.quants.QuantError):
            pass  # this gguf-py cannot quantize to q: the seed goes without that tensor
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_tokenizer_seed(path, tok_json, model):
    """A GGUF holding the tokenizer of a tokenizer.json, as llama.cpp's converter lays it out."""
    import gguf
    t = json.loads(tok_json)
    vocab = t["model"]["vocab"]
    added = {a["content"]: a["id"] for a in t.get("added_tokens", [])}
    by_id = {i: s for s, i in list(vocab.items()) + list(added.items())}
    tokens = [by_id[i] for i in range(max(by_id) + 1)]
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model(model)
    w.add_token_list(tokens)
    w.add_token_types([3 if s in added else 1 for s in tokens])
    if model == "gpt2":
        merges = t["model"]["merges"]
        w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
        w.add_tokenizer_pre("smollm")
    else:
        w.add_token_scores([-float(i) for i in range(len(tokens))])
        w.add_add_bos_token(True)
    w.add_bos_token_id(added.get("<s>", added.get("<|im_start|>", 0)))
    w.add_eos_token_id(added.get("</s>", added.get("<|im_end|>", 1)))
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---- tokenizers -----------------------------------------------------------------------------

CLINICAL = [
    "Metformin lowers fasting glucose and HbA1c in type 2 diabetes.",
    "Blood pressure of 150/95 mmHg on two visits indicates hypertension.",
    "The patient reports chest pain radiating to the left arm; troponin was raised.",
    "Amoxicillin 500 mg three times daily for seven days.",
    "Dyspnoea, orthopnoea and ankle oedema suggest heart failure.",
] * 20


def trained_tokenizers():
    """Two small tokenizers trained by Hugging Face tokenizers: byte-level BPE (GPT-2 style)
    and SentencePiece-style BPE (Metaspace, byte fallback), as their JSON."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    bl = Tokenizer(models.BPE())
    bl.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bl.decoder = decoders.ByteLevel()
    bl.train_from_iterator(CLINICAL, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    sp = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    sp.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    sp.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                    decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    sp.train_from_iterator(CLINICAL, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]))
    return bl.to_str(), sp.to_str()


# ---- medtune runs: quickstart --tiny, a small prep and train ----------------------------------

def run(cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


def archive(files):
    """The shard archive of fuzz_shards.c: name NUL, u32 length, bytes; per file."""
    out = b""
    for name, data in files:
        out += name.encode() + b"\x00" + struct.pack("<I", len(data)) + data
    return out


def medtune_seeds(c, medtune, work):
    qs = os.path.join(work, "qs")
    run([medtune, "quickstart", "--tiny", "--out", qs, "--steps", "2"])
    model = os.path.join(qs, "model")
    c.add("tokenizer", "json_tiny_model", read(os.path.join(model, "tokenizer.json")), b"\x00")
    c.add("config", "model_tiny", read(os.path.join(model, "config.json")), b"\x02")
    tpl = json.loads(read(os.path.join(model, "tokenizer_config.json")))["chat_template"]
    c.add("prep_records", "template_tiny_chatml", tpl, b"\xc0")
    for name in ("sft", "dapt"):
        c.add("config", "train_quickstart_" + name, read(os.path.join(qs, "configs", name + ".json")), b"\x00")
    for name in ("prep_medqa", "prep_notes"):
        c.add("config", name, read(os.path.join(qs, "configs", name + ".json")), b"\x01")
    c.add("metrics", "quickstart_run", read(os.path.join(qs, "run", "metrics.jsonl")))

    # A small chat corpus (whole packing) and a text corpus (stream packing): short shards.
    data = os.path.join(work, "data")
    os.makedirs(data)
    with open(os.path.join(SOURCE, "configs", "quickstart", "medqa.jsonl")) as f:
        chat = f.readlines()[:6]
    with open(os.path.join(data, "chat.jsonl"), "w") as f:
        f.writelines(chat)
    shutil.copy(os.path.join(SOURCE, "configs", "quickstart", "clinical_notes.txt"), data)
    for name, inp, fmt in (("chat", "chat.jsonl", "alpaca"), ("text", "clinical_notes.txt", "text")):
        out = os.path.join(work, "shards_" + name)
        cfg = {"tokenizer": model, "inputs": [{"path": os.path.join(data, inp), "format": fmt}],
               "val_fraction": 0.3, "out_dir": out}
        cfg_path = os.path.join(work, f"prep_{name}.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        run([medtune, "prep", cfg_path])
        files = [(n, read(os.path.join(out, n))) for n in sorted(os.listdir(out))]
        c.add("shards", "dir_" + name, archive(files), b"\x00")
        c.add("shards", "dir_repair_" + name, archive(files), b"\x01")
        c.add("shards", "dir_json_" + name, archive(files), b"\x03")
        if name == "chat":
            # A small train run, rank 1 on q_proj only: a state.h5 of a few KB.
            train = {"model": model, "data": {"train": out}, "lora": {"r": 1, "alpha": 2, "targets": ["q_proj"]},
                     "batch": {"micro_batch": 1, "seq_len": 32, "grad_accum": 1}, "steps": 2,
                     "eval_every": 0, "save_every": 1, "threads": 1, "out_dir": os.path.join(work, "run")}
            train_path = os.path.join(work, "train.json")
            with open(train_path, "w") as f:
                json.dump(train, f)
            run([medtune, "train", train_path])
            c.add("config", "train_small", json.dumps(train), b"\x00")
            c.add("config", "train_small_sets", json.dumps(train) + "\x00steps=7\x00lora.targets=all-linear", b"\x00")
            ck = os.path.join(work, "run", "checkpoints")
            for step in sorted(os.listdir(ck)):
                if step.startswith("step_"):
                    c.add("state", step, read(os.path.join(ck, step, "state.h5")))
            c.add("metrics", "small_run", read(os.path.join(work, "run", "metrics.jsonl")))


def repo_seeds(c):
    for name in ("pubmed_dapt", "meddialog_sft"):
        c.add("config", "train_" + name, read(os.path.join(SOURCE, "configs", name + ".json")), b"\x00")
    for name in ("prep_pubmed", "prep_general", "prep_chat"):
        c.add("config", name, read(os.path.join(SOURCE, "configs", name + ".json")), b"\x01")
    c.add("config", "model_qwen2_rope", json.dumps({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 300, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "max_position_embeddings": 256, "tie_word_embeddings": False,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 128},
        "eos_token_id": [1, 2]}), b"\x02")

    qa = read(os.path.join(SOURCE, "configs", "quickstart", "medqa.jsonl")).splitlines(keepends=True)
    alpaca = b"".join(qa[:4])
    records = [json.loads(line) for line in qa[:4]]
    jsonl = "".join(json.dumps({"text": r["instruction"] + " " + r["output"]}) + "\n" for r in records)
    sharegpt = json.dumps([{"conversations": [
        {"from": "system", "value": "You answer clinical questions briefly."},
        {"from": "human", "value": r["instruction"]}, {"from": "gpt", "value": r["output"]}]} for r in records])
    messages = "".join(json.dumps({"messages": [
        {"role": "user", "content": r["instruction"]}, {"role": "assistant", "content": r["output"]},
        {"role": "user", "content": "And the next step?"}, {"role": "assistant", "content": "Review in clinic."}]}) + "\n"
        for r in records)
    for fmt, text in enumerate((jsonl, alpaca, sharegpt, messages)):
        for template in range(5):
            b = fmt | (template << 3) | ((template & 1) << 2)
            c.add("prep_records", f"records_{fmt}_{template}", text, bytes([b]))
    for name, tpl in (
            ("llama2", "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                       "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token }}"
                       "{% endif %}{% endfor %}"),
            ("llama3", "{% set loop_messages = messages %}{% for message in loop_messages %}"
                       "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
                       "+ message['content'] | trim + '<|eot_id|>' %}{{ content }}{% endfor %}"),
            ("zephyr", "{% for message in messages %}{% if message['role'] == 'user' %}"
                       "{{ '<|user|>\n' + message['content'] + eos_token }}{% endif %}{% endfor %}")):
        c.add("prep_records", "template_" + name, tpl, b"\xc0")

    notes = read(os.path.join(SOURCE, "configs", "quickstart", "clinical_notes.txt")).decode().split("\n\n")
    pubmed = ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE PubmedArticleSet>\n<PubmedArticleSet>\n'
              + "".join(f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{100 + i}</PMID>'
                        f"<Article><ArticleTitle>Note {i} &amp; outcome</ArticleTitle><Abstract>"
                        f'<AbstractText Label="BACKGROUND" NlmCategory="BACKGROUND">{n[:300]}</AbstractText>'
                        f'<AbstractText Label="RESULTS">HbA1c fell by 1.2% (<i>p</i>&lt;0.01).</AbstractText>'
                        f"</Abstract></Article></MedlineCitation></PubmedArticle>\n" for i, n in enumerate(notes[:3]))
              + "<PubmedArticle><MedlineCitation><PMID>999</PMID><Article><ArticleTitle>No abstract</ArticleTitle>"
              "</Article></MedlineCitation></PubmedArticle>\n</PubmedArticleSet>\n")
    pmc = ('<?xml version="1.0" encoding="UTF-8"?>\n<article xmlns:xlink="http://www.w3.org/1999/xlink" article-type="research-article">'
           "<front><article-meta><title-group><article-title>Clinical notes</article-title></title-group>"
           f"<abstract><p>{notes[0][:200]}</p></abstract></article-meta></front><body>"
           + "".join(f'<sec><title>Section {i}</title><p>{n[:300]}<xref ref-type="bibr" rid="b{i}">{i}</xref></p>'
                     f"<table-wrap><table><tr><td>x</td></tr></table></table-wrap></sec>" for i, n in enumerate(notes[:3]))
           + '</body><back><ref-list><ref id="b0"><mixed-citation>Ref</mixed-citation></ref></ref-list></back></article>\n')
    for strict in (0, 2):
        c.add("xml", f"pubmed_{strict}", pubmed, bytes([strict]))
        c.add("xml", f"pmc_{strict}", pmc, bytes([1 | strict]))
    c.add("metrics", "edges", "\n".join([
        '{"step": 1, "loss": 2.5, "lr": 0.0001, "grad_norm": 1.0, "tokens": 512, "tok_per_s": 300.5, "elapsed_s": 1.7}',
        '{"step": 1, "val_loss": 2.4, "val_ppl": 11.02}',
        '{"step": 2, "loss": NaN, "lr": Infinity, "grad_norm": -Infinity}',
        '{"step": 3, "loss": nan, "lr": inf}', 'not json', '{"step": -1, "loss": 1}',
        '{"step": 4, "loss": 1.9', ""]))


def shared_seeds(c, shared, work):
    """Excerpts of ../shared: real tokenizers, model configs, templates and corpora."""
    for d in ("gpt2", "llama2", "qwen2.5", "mistral-7b-v0.1", "phi-3-mini", "llama3.2-ollama"):
        path = os.path.join(shared, "tokenizers", d, "tokenizer.json")
        if os.path.exists(path) and os.path.getsize(path) < 8 << 20:
            c.add("tokenizer", "shared_" + d, read(path), b"\x00")
        cfg = os.path.join(shared, "tokenizers", d, "tokenizer_config.json")
        if os.path.exists(cfg):
            tpl = json.loads(read(cfg)).get("chat_template")
            if isinstance(tpl, str):
                c.add("prep_records", "template_shared_" + d, tpl, b"\xc0")
    for m in ("stories260K", "tinystories-656k"):
        c.add("tokenizer", "shared_" + m, read(os.path.join(shared, "models", m, "tokenizer.json")), b"\x00")
        c.add("config", "model_" + m, read(os.path.join(shared, "models", m, "config.json")), b"\x02")
        gguf_tokenizer_seed(os.path.join(work, m + ".gguf"),
                            read(os.path.join(shared, "models", m, "tokenizer.json")).decode(),
                            "llama" if m == "stories260K" else "gpt2")
        c.add("tokenizer", "gguf_shared_" + m, read(os.path.join(work, m + ".gguf")), b"\x01")
    xml_dir = os.path.join(shared, "data", "pubmed_xml")
    for name in sorted(os.listdir(xml_dir)):
        if name.endswith(".xml"):
            text = read(os.path.join(xml_dir, name)).decode()
            cut = [i for i in range(len(text)) if text.startswith("</PubmedArticle>", i)][:3]
            if cut:
                c.add("xml", "shared_" + name, text[:cut[-1]] + "</PubmedArticle>\n</PubmedArticleSet>\n", b"\x00")
    pmc_dir = os.path.join(shared, "data", "pmc_oa_nxml")
    for name in sorted(os.listdir(pmc_dir)):
        if name.endswith(".nxml") and os.path.getsize(os.path.join(pmc_dir, name)) < 64 << 10:
            c.add("xml", "shared_" + name, read(os.path.join(pmc_dir, name)), b"\x01")
    for sub, fmt in (("medalpaca_meadow", 1), ("medicalgpt_sharegpt_zh", 2), ("chatdoctor", 1)):
        d = os.path.join(shared, "data", sub)
        for name in sorted(os.listdir(d)):
            if name.endswith((".json", ".jsonl")):
                head = read(os.path.join(d, name))[:4096]
                c.add("prep_records", f"shared_{sub}", head[:head.rfind(b"\n") + 1] or head, bytes([fmt]))
                break


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--medtune", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--shared")
    a = ap.parse_args()
    c = Corpus(a.out)
    with tempfile.TemporaryDirectory() as work:
        safetensors_seeds(c, work)
        path = os.path.join(work, "model.gguf")
        gguf_model_seed(path)
        c.add("gguf", "model_small", read(path))
        bl, sp = trained_tokenizers()
        c.add("tokenizer", "json_bytelevel", bl, b"\x00")
        c.add("tokenizer", "json_sentencepiece", sp, b"\x00")
        for name, tok, model in (("bytelevel", bl, "gpt2"), ("sentencepiece", sp, "llama")):
            path = os.path.join(work, name + ".gguf")
            gguf_tokenizer_seed(path, tok, model)
            c.add("tokenizer", "gguf_" + name, read(path), b"\x01")
            c.add("gguf", "tokenizer_" + name, read(path))
        medtune_seeds(c, a.medtune, work)
        repo_seeds(c)
        if a.shared:
            shared_seeds(c, a.shared, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
