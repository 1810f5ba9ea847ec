"""Helpers shared by the Python test drivers (the counterpart of tests/testlib.h): skipping,
failing, the paths ctest passes in the environment, and fresh working directories."""
import json
import os
import subprocess
import sys

SKIP = 77
TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(TESTS, "twin"))


def skip(msg):
    """Prints SKIP and exits 77: ctest reports the test as skipped."""
    print(f"SKIP: {msg}")
    sys.exit(SKIP)


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def env(name, default=None):
    v = os.environ.get(name)
    return v if v else default


def shared_path():
    """$MEDTUNE_SHARED, or ../shared beside the checkout, whether it exists or not."""
    return env("MEDTUNE_SHARED", os.path.join(TESTS, "../../shared"))


def shared_dir():
    """shared_path(); skips when absent."""
    d = shared_path()
    if not os.path.isdir(d):
        skip(f"shared folder {d} is absent")
    return os.path.abspath(d)


def medtune_bin():
    return env("MEDTUNE_BIN", "medtune")


def smollm2():
    """The real SmolLM2-135M-Instruct GGUF fetched by tools/bootstrap.sh, or None."""
    p = os.path.join(env("MEDTUNE_CACHE", os.path.join(TESTS, "../.cache")),
                     "SmolLM2-135M-Instruct.Q4_1.gguf")
    return p if os.path.exists(p) else None


def work_dir(area, name):
    """An empty directory $MEDTUNE_TEST_BIN/<area>/<name> for one test."""
    d = os.path.join(env("MEDTUNE_TEST_BIN", "/tmp"), area, name)
    subprocess.run(["rm", "-rf", d], check=True)
    os.makedirs(d)
    return d


def write_json(path, obj):
    """obj as indented JSON at path; returns path."""
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
    return path


def run(args, expect=0, exe=None, **kw):
    """Runs medtune (or the program exe) with `args`; fails the test unless it exits with
    `expect` (None: any)."""
    p = subprocess.run([exe or medtune_bin()] + args, capture_output=True, text=True, **kw)
    if expect is not None and p.returncode != expect:
        fail(f"{os.path.basename(exe) if exe else 'medtune'} {' '.join(args)} exited "
             f"{p.returncode}, expected {expect}\n"
             f"stdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}")
    return p


def expect_error(args, *needles, only=True, env=None):
    """Runs medtune, which must exit 1 with exactly one `medtune: error:` line naming every
    needle. With only=True that line must be all of stderr; otherwise progress lines printed
    before the failure are allowed. Returns the error line."""
    p = run(args, expect=1, env=env)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    errors = [l for l in lines if l.startswith("medtune: error:")]
    if len(errors) != 1 or (only and len(lines) != 1):
        fail(f"medtune {' '.join(args)}: expected one error line, got:\n{p.stderr}")
    for n in needles:
        if n not in errors[0]:
            fail(f"medtune {' '.join(args)}: error does not name {n!r}: {errors[0]}")
    print(f"ok: {errors[0]}")
    return errors[0]


# ---- What a fresh clone has: the sample data of configs/quickstart/, tokenizers trained on it,
# ---- random-weight models. Drivers run these cases always and add the ../shared ones when present.

def source_dir():
    return os.path.abspath(env("MEDTUNE_SOURCE", os.path.join(TESTS, "..")))


def quickstart_dir():
    """configs/quickstart: the sample clinical notes and medical Q&A."""
    return os.path.join(source_dir(), "configs", "quickstart")


def sample_files():
    """The text files every checkout has: the quickstart's sample data and the adversarial
    tokenizer strings (tests/data/adversarial.txt)."""
    return [os.path.join(quickstart_dir(), n) for n in ("clinical_notes.txt", "medqa.jsonl")] + \
        [os.path.join(source_dir(), "tests", "data", "adversarial.txt")]


def sample_records():
    """(file name, line number, text) of every non-empty line of sample_files(), then each
    file whole (line number 0): the same shape as the ../shared data records."""
    lines, docs = [], []
    for path in sample_files():
        text = open(path, encoding="utf-8").read()
        name = os.path.relpath(path, source_dir())
        docs.append((name, 0, text))
        lines += [(name, i + 1, l) for i, l in enumerate(text.split("\n")) if l]
    return lines, docs


def sample_corpus():
    """Sample-data texts to train a tokenizer on: clinical paragraphs and the Q&A fields."""
    out = [p for p in open(os.path.join(quickstart_dir(), "clinical_notes.txt"),
                           encoding="utf-8").read().split("\n") if p]
    for line in open(os.path.join(quickstart_dir(), "medqa.jsonl"), encoding="utf-8"):
        rec = json.loads(line)
        out += [rec[k] for k in ("instruction", "input", "output") if rec.get(k)]
    return out


# Qwen2 / Llama-3 split patterns, as transformers' Qwen2Tokenizer and Llama-3's tokenizer.json have them.
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# The tokenizer pipelines of the model families medtune supports, as their tokenizer.json files
# configure them: "gpt2" byte-level BPE (GPT-2, Phi-2), "qwen2" NFC + Qwen2 split + byte level,
# "llama3" Llama-3 split + byte level with ignore_merges, "spm" SentencePiece-style BPE with
# byte fallback through a Prepend/Replace normalizer (Llama 2, TinyLlama, Phi-3, tinystories),
# "spm-metaspace" the same through a Metaspace pre-tokenizer (Mistral); "spm-gemma" the pipeline of
# transformers' GemmaTokenizer (Gemma 2/3: spaces as ▁, no dummy prefix, <bos> added).
TOKENIZER_FLAVOURS = ("gpt2", "qwen2", "llama3", "spm", "spm-metaspace", "spm-gemma")


def train_tokenizer(flavour, out_dir, vocab_size=700, specials=(), chat_template=None):
    """Trains a BPE tokenizer of one of TOKENIZER_FLAVOURS on sample_corpus() with Hugging Face
    `tokenizers` and writes out_dir/tokenizer.json (+ tokenizer_config.json naming BOS/EOS and
    `chat_template` when given). The file is HF's own: an independent reference for medtune's
    reader and encoder. Returns out_dir. SentencePiece-style vocabularies are <unk> <s> </s>,
    the 256 <0xNN> byte tokens, then the learned pieces, as Llama 2's. `specials` are added
    as special tokens after the vocabulary (chat markers such as <|im_start|>)."""
    import json
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors, trainers
    if flavour not in TOKENIZER_FLAVOURS:
        raise ValueError(f"unknown tokenizer flavour {flavour!r}")
    os.makedirs(out_dir, exist_ok=True)
    extra = specials
    spm = flavour.startswith("spm")
    gemma = flavour == "spm-gemma"
    if spm:
        specials, bos, eos = ["<unk>", "<s>", "</s>"], "<s>", "</s>"
        if gemma:  # Gemma's first five ids
            specials, bos, eos = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"], "<bos>", "<eos>"
        tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
        # Trained on ▁-prefixed words; encoding then runs on the whole normalized text, as
        # Llama 2's file does (no pre-tokenizer). Gemma adds no dummy prefix.
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581",
                                                     prepend_scheme="never" if gemma else "first")
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      show_progress=False)
    else:
        specials = ["<|endoftext|>"] if flavour != "llama3" else ["<|begin_of_text|>", "<|end_of_text|>"]
        bos, eos = (specials[0], specials[1]) if flavour == "llama3" else (None, specials[0])
        tok = Tokenizer(models.BPE())
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=flavour == "gpt2")
        pattern = {"qwen2": QWEN2_PATTERN, "llama3": LLAMA3_PATTERN}.get(flavour)
        tok.pre_tokenizer = byte_level if not pattern else pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False), byte_level])
        if flavour == "qwen2":
            tok.normalizer = normalizers.NFC()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                      show_progress=False)
    tok.train_from_iterator(sample_corpus(), trainer)
    j = json.loads(tok.to_str())
    if spm:
        learned = [t for t, _ in sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1])
                   if t not in specials]
        order = specials + [f"<0x{b:02X}>" for b in range(256)] + learned
        j["model"]["vocab"] = {t: i for i, t in enumerate(order)}
        for a in j["added_tokens"]:
            a["id"] = j["model"]["vocab"][a["content"]]
            a["normalized"] = False
        j["decoder"] = json.loads(decoders.Sequence([
            decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
            decoders.Strip(" ", 1, 0)]).__getstate__())
        if gemma:
            # transformers' GemmaTokenizer / GemmaConverter pipeline (Gemma 2 and 3, MedGemma)
            j["decoder"] = json.loads(decoders.Sequence([
                decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                decoders.Fuse()]).__getstate__())
            j["normalizer"] = json.loads(normalizers.Replace(" ", "\u2581").__getstate__())
            j["pre_tokenizer"] = json.loads(pre_tokenizers.Split(
                " ", behavior="merged_with_previous", invert=False).__getstate__())
        elif flavour == "spm":
            j["pre_tokenizer"] = None
            j["normalizer"] = json.loads(normalizers.Sequence([
                normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")]).__getstate__())
        else:
            j["pre_tokenizer"] = json.loads(pre_tokenizers.Metaspace(
                replacement="\u2581", prepend_scheme="first", split=False).__getstate__())
        tok = Tokenizer.from_str(json.dumps(j))
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, j["model"]["vocab"][bos])])
    else:
        tok.decoder = decoders.ByteLevel()
        if flavour == "llama3":
            j["model"]["ignore_merges"] = True
            tok = Tokenizer.from_str(json.dumps(j))
            tok.decoder = decoders.ByteLevel()
            tok.post_processor = processors.TemplateProcessing(
                single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))])
        else:
            tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in list(specials) + list(extra)])
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    config = {"bos_token": bos, "eos_token": eos, "add_bos_token": flavour.startswith("spm")}
    if chat_template:
        config["chat_template"] = chat_template
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1)
    return out_dir


# A stand-in for tinystories-656k (llama, GQA 8/4, tied): the same shapes with random weights.
RANDOM_MODEL_SPEC = {"arch": "llama", "hidden_size": 128, "intermediate_size": 384, "n_layers": 2,
                     "n_heads": 8, "n_kv_heads": 4, "head_dim": 16, "tie": True,
                     "rope_theta": 10000.0, "rope_scaling": None, "dtype": "F32", "seed": 5,
                     "max_position_embeddings": 512}


def random_hf_model(out_dir, flavour="spm", **spec):
    """A Hugging Face model directory with random weights (tests/twin/make_model.py, seeded)
    and a tokenizer trained by train_tokenizer(flavour); `spec` overrides RANDOM_MODEL_SPEC.
    The vocabulary size is the tokenizer's. Returns out_dir."""
    from tokenizers import Tokenizer
    from make_model import write_model
    train_tokenizer(flavour, out_dir)
    full = dict(RANDOM_MODEL_SPEC, **spec)
    full["vocab_size"] = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json")).get_vocab_size()
    write_model(full, out_dir)
    return out_dir
