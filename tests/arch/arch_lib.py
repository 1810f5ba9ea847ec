"""Helpers of the architecture oracle tests: the oracle venv, models written by transformers,
medtune's outputs (tests/test_arch.c) and GGUF files written with gguf-py."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import env, fail, skip, train_tokenizer  # noqa: E402
from testlib import run, write_json  # noqa: E402,F401

B, T = 2, 24  # the test batch


def oracle_venv():
    return env("MEDTUNE_ORACLE_VENV",
               os.path.join(env("MEDTUNE_CACHE", os.path.join(HERE, "../../.cache")),
                            "venv-oracle"))


def reexec_in_oracle():
    """Runs this script again with the oracle venv's Python (skips when it is absent)."""
    venv = oracle_venv()
    py = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        return
    if not os.path.exists(py):
        skip(f"the oracle venv is absent ({py}; tools/oracle_venv.sh makes it, or set "
             "MEDTUNE_ORACLE_VENV)")
    os.execv(py, [py] + sys.argv)


def helper_bin():
    return os.path.join(env("MEDTUNE_TEST_BIN", "."), "test_arch")


def batch(vocab, seed=3):
    """tokens [B, T] and next-token targets (-1: no loss) with a masked stretch in row 1."""
    import numpy as np
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, vocab, size=(B, T)).astype(np.int32)
    targets = np.full((B, T), -1, dtype=np.int32)
    targets[:, :-1] = tokens[:, 1:]
    targets[1, :5] = -1
    return tokens, targets


def hf_labels(tokens, targets):
    """transformers' labels for the same loss: labels[:, t + 1] = targets[:, t]."""
    import numpy as np
    labels = np.full(tokens.shape, -100, dtype=np.int64)
    labels[:, 1:] = np.where(targets[:, :-1] < 0, -100, targets[:, :-1])
    return labels


def medtune_outputs(work, model, adapter, tokens, targets, tag):
    """{name: array} written by test_arch run (logits, decoder_logits, loss, grad.*)."""
    from safetensors.numpy import load_file, save_file
    case = os.path.join(work, f"{tag}_case.safetensors")
    out = os.path.join(work, f"{tag}_out.safetensors")
    save_file({"tokens": tokens, "targets": targets}, case)
    p = run(["run", model, adapter or "-", case, out], exe=helper_bin())
    for line in p.stdout.splitlines():
        if line.startswith("recompute:"):
            print(f"{tag}: {line}")
    return load_file(out)


def tokenizer_dir(out_dir):
    """A SentencePiece-style BPE tokenizer trained on the sample (<unk> <s> </s> = 0, 1, 2)."""
    train_tokenizer("spm", out_dir)
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json")).get_vocab_size()


def write_gguf(path, sd, cfg, spec, tokenizer_json=None):
    """The model's state dict as llama.cpp's convert_hf_to_gguf.py writes it: F32 tensors under
    gguf-py's names, norm weights shifted by spec["norm_shift"] (gemma: + 1), no Q/K
    permutation (qwen3 and gemma3 keep HF's rotate_half layout), output.weight only when
    untied. With tokenizer_json, the vocabulary as a SentencePiece ("llama") GGUF vocabulary."""
    import gguf
    import numpy as np
    from arch_cases import GGUF_NAMES
    arch = spec["arch"]
    names = dict(GGUF_NAMES, **spec["norms"])
    w = gguf.GGUFWriter(path, arch)
    c = cfg
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_block_count(c["num_hidden_layers"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(c["num_key_value_heads"])
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    w.add_key_length(c["head_dim"])
    w.add_value_length(c["head_dim"])
    rp = c.get("rope_parameters") or {}
    full = rp.get("full_attention", rp)
    w.add_rope_freq_base(full.get("rope_theta", c.get("rope_theta", 10000.0)))
    if full.get("rope_type") == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(full["factor"])
    if c.get("sliding_window") and arch == "gemma3":
        w.add_sliding_window(c["sliding_window"])
        w.add_sliding_window_pattern(spec["sliding_window_pattern"])
    if c.get("final_logit_softcapping"):
        w.add_final_logit_softcapping(c["final_logit_softcapping"])
    w.add_bos_token_id(c["bos_token_id"])
    w.add_eos_token_id(c["eos_token_id"])
    if tokenizer_json:
        add_spm_vocab(w, tokenizer_json)
    for hf_name, t in sd.items():
        key = hf_name[len("model."):] if hf_name.startswith("model.") else hf_name
        layer = None
        if key.startswith("layers."):
            layer = key.split(".")[1]
            key = key.replace(f"layers.{layer}.", "layers.{l}.", 1)
        if key == "lm_head.weight" and c.get("tie_word_embeddings"):
            continue
        if key not in names:
            fail(f"{hf_name}: no GGUF name in arch_cases.GGUF_NAMES")
        data = t.detach().float().numpy().astype(np.float32)
        if key.endswith("norm.weight"):
            data = data + np.float32(spec["norm_shift"])
        w.add_tensor(names[key].format(l=layer), np.ascontiguousarray(data))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def add_spm_vocab(w, tokenizer_json):
    """tokenizer.ggml.* of a SentencePiece-style BPE tokenizer.json, as llama.cpp's
    _set_vocab_sentencepiece writes them: tokens in id order, scores (earlier = preferred),
    token types (normal 1, unknown 2, control 3, byte 6)."""
    import json as _json
    import gguf
    tj = _json.load(open(tokenizer_json))
    vocab = tj["model"]["vocab"]
    tokens = [None] * len(vocab)
    for tok, i in vocab.items():
        tokens[i] = tok
    types = []
    for i, tok in enumerate(tokens):
        if tok == "<unk>":
            types.append(gguf.TokenType.UNKNOWN)
        elif tok in ("<s>", "</s>"):
            types.append(gguf.TokenType.CONTROL)
        elif tok.startswith("<0x") and len(tok) == 6:
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(len(tokens))])
    w.add_token_types(types)
    w.add_unk_token_id(0)
