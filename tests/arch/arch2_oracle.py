"""The transformers + PEFT side of check_phi3_gpt2.py, run in the oracle venv:
  make WORK     random small phi3 and gpt2 models (transformers' save_pretrained), a PEFT
                adapter with random A and B for each, test batches, and the reference logits,
                loss (fp32 forward) and LoRA gradients (float64 autograd) in WORK/<case>/ref*
  check WORK    compares medtune's outputs (WORK/<case>/out*.safetensors) with the references,
                and the adapter medtune trained and exported (WORK/<case>/trained) loaded by
                PEFT onto the transformers model with medtune's logits after training.
Prints one line per comparison; exits 1 on the first failure."""
import json
import math
import os
import sys

import gguf
import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel, Phi3Config, Phi3ForCausalLM

TOL_LOGITS = 1e-5
TOL_LOSS = 1e-5
TOL_GRAD_REL = 1e-4


def phi3_longrope():
    # head_dim 10 with partial_rotary_factor 0.6: 6 rotated dims, 3 short and long factors;
    # GQA 6 / 2; original_max_position_embeddings 16 below the 24-token batch (long factors)
    # and above the 12-token one (short factors).
    cfg = Phi3Config(vocab_size=203, hidden_size=60, intermediate_size=37, num_hidden_layers=2,
                     num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64,
                     original_max_position_embeddings=16, partial_rotary_factor=0.6,
                     rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                      "partial_rotary_factor": 0.6,
                                      "short_factor": [1.0, 1.3, 2.1],
                                      "long_factor": [1.7, 3.9, 7.5]},
                     sliding_window=None, tie_word_embeddings=False, pad_token_id=0,
                     bos_token_id=1, eos_token_id=2)
    targets = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    return Phi3ForCausalLM(cfg), targets, False


def phi3_default():
    cfg = Phi3Config(vocab_size=157, hidden_size=60, intermediate_size=45, num_hidden_layers=2,
                     num_attention_heads=3, num_key_value_heads=3, max_position_embeddings=64,
                     rope_parameters={"rope_type": "default", "rope_theta": 500.0},
                     sliding_window=None, tie_word_embeddings=True, pad_token_id=0,
                     bos_token_id=1, eos_token_id=2)
    return Phi3ForCausalLM(cfg), ["qkv_proj", "down_proj"], False


def gpt2_plain():
    cfg = GPT2Config(vocab_size=211, n_embd=60, n_layer=2, n_head=5, n_inner=74, n_positions=40,
                     layer_norm_epsilon=1e-5, activation_function="gelu_new")
    return GPT2LMHeadModel(cfg), ["c_attn", "c_proj", "c_fc"], True


def gpt2_biomedlm():
    # BioMedLM's attention settings: scores of layer l divided by l + 1, fp32 upcast order.
    cfg = GPT2Config(vocab_size=173, n_embd=36, n_layer=3, n_head=3, n_positions=32,
                     scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True,
                     activation_function="gelu_new")
    return GPT2LMHeadModel(cfg), ["c_attn", "c_proj"], True


CASES = {"phi3_longrope": phi3_longrope, "phi3_default": phi3_default,
         "gpt2_plain": gpt2_plain, "gpt2_biomedlm": gpt2_biomedlm}
NO_GGUF_EQUIVALENT = {"gpt2_biomedlm"}
# The batches of each case: (B, T).
BATCHES = {"phi3_longrope": [(2, 24), (2, 12)], "phi3_default": [(2, 19)],
           "gpt2_plain": [(2, 23)], "gpt2_biomedlm": [(3, 17)]}


def batch(vocab, B, T, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (B, T), generator=g, dtype=torch.int32)
    targets = torch.cat([tokens[:, 1:], torch.full((B, 1), -1, dtype=torch.int32)], dim=1)
    targets[0, :3] = -1  # a masked prompt
    return tokens, targets


def randomize(model, seed):
    """Random weights with a spread that makes every part of the block matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or ".ln_" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g) if name.endswith("weight")
                        else 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def loss_of(logits, targets):
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             targets.reshape(-1).long(), ignore_index=-1)


def write_gguf(model, path, f16=False, tokenizer_json=None):
    """The model as llama.cpp's convert_hf_to_gguf.py writes it (F32, or with --outtype f16 every
    2-D weight as F16): phi3 keeps qkv_proj and gate_up_proj fused (attn_qkv, ffn_up), partial
    rotary in rope.dimension_count, LongRoPE as rope_factors_long/short with the original
    context length and attention factor; gpt2's Conv1D weights transposed, context_length =
    n_positions, feed_forward_length = 4 * n_embd. With tokenizer_json, its vocabulary as a
    SentencePiece ("llama") GGUF vocabulary and the config's bos / eos ids."""
    cfg = model.config
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    if f16:
        sd = {k: v.astype(np.float16) if v.ndim == 2 else v for k, v in sd.items()}
    if cfg.model_type == "phi3":
        w = gguf.GGUFWriter(path, "phi3")
        rp = cfg.rope_parameters
        head_dim = cfg.hidden_size // cfg.num_attention_heads
        rope_dims = int(rp.get("partial_rotary_factor", 1.0) * cfg.hidden_size) // cfg.num_attention_heads
        orig = getattr(cfg, "original_max_position_embeddings", cfg.max_position_embeddings)
        w.add_context_length(cfg.max_position_embeddings)
        w.add_rope_scaling_orig_ctx_len(orig)
        w.add_embedding_length(cfg.hidden_size)
        w.add_feed_forward_length(cfg.intermediate_size)
        w.add_block_count(cfg.num_hidden_layers)
        w.add_head_count(cfg.num_attention_heads)
        w.add_head_count_kv(cfg.num_key_value_heads)
        w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
        w.add_rope_dimension_count(rope_dims)
        w.add_rope_freq_base(rp["rope_theta"])
        w.add_sliding_window(0)
        assert head_dim >= rope_dims
        if rp.get("rope_type") == "longrope":
            scale = cfg.max_position_embeddings / orig
            w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(orig))
                                            if scale > 1.0 else 1.0)
            w.add_tensor("rope_factors_long.weight", np.array(rp["long_factor"], dtype=np.float32))
            w.add_tensor("rope_factors_short.weight", np.array(rp["short_factor"], dtype=np.float32))
        names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                 "lm_head.weight": "output.weight"}
        per = {"input_layernorm.weight": "attn_norm.weight", "self_attn.qkv_proj.weight": "attn_qkv.weight",
               "self_attn.o_proj.weight": "attn_output.weight",
               "post_attention_layernorm.weight": "ffn_norm.weight",
               "mlp.gate_up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
        prefix = "model.layers."
        if cfg.tie_word_embeddings:
            sd.pop("lm_head.weight", None)
    else:
        w = gguf.GGUFWriter(path, "gpt2")
        w.add_block_count(cfg.n_layer)
        w.add_context_length(cfg.n_positions)
        w.add_embedding_length(cfg.n_embd)
        w.add_feed_forward_length(4 * cfg.n_embd)
        w.add_head_count(cfg.n_head)
        w.add_layer_norm_eps(cfg.layer_norm_epsilon)
        names = {"transformer.wte.weight": "token_embd.weight", "transformer.wpe.weight": "position_embd.weight",
                 "transformer.ln_f.weight": "output_norm.weight", "transformer.ln_f.bias": "output_norm.bias"}
        per = {}
        for hf, gg in [("ln_1", "attn_norm"), ("attn.c_attn", "attn_qkv"), ("attn.c_proj", "attn_output"),
                       ("ln_2", "ffn_norm"), ("mlp.c_fc", "ffn_up"), ("mlp.c_proj", "ffn_down")]:
            per[hf + ".weight"] = gg + ".weight"
            per[hf + ".bias"] = gg + ".bias"
        prefix = "transformer.h."
        sd.pop("lm_head.weight", None)  # tied to wte: llama.cpp then uses token_embd
    if tokenizer_json:
        from arch_lib import add_spm_vocab
        add_spm_vocab(w, tokenizer_json)
        w.add_bos_token_id(cfg.bos_token_id)
        w.add_eos_token_id(cfg.eos_token_id)
    for k, v in sd.items():
        if k in names:
            w.add_tensor(names[k], np.ascontiguousarray(v))
            continue
        if not k.startswith(prefix) or k.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        layer, rest = k[len(prefix):].split(".", 1)
        if cfg.model_type == "gpt2" and rest.endswith(".weight") and not rest.startswith("ln_"):
            v = v.T  # Conv1D [in, out] -> [out, in]
        w.add_tensor(f"blk.{layer}.{per[rest]}", np.ascontiguousarray(v))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make(work):
    torch.manual_seed(0)
    for i, (case, build) in enumerate(CASES.items()):
        d = os.path.join(work, case)
        os.makedirs(d, exist_ok=True)
        model, targets, conv1d = build()
        randomize(model, 100 + i)
        model.save_pretrained(os.path.join(d, "model"), safe_serialization=True)
        # The references use the model as read back: what a user of the directory gets (tied
        # heads are tied at load).
        model = type(model).from_pretrained(os.path.join(d, "model"), dtype=torch.float32)
        write_gguf(model, os.path.join(d, "model.gguf"))
        write_gguf(model, os.path.join(d, "model_f16.gguf"), f16=True)
        lcfg = LoraConfig(r=3, lora_alpha=7, target_modules=targets, lora_dropout=0.0,
                          fan_in_fan_out=conv1d, bias="none", task_type="CAUSAL_LM")
        peft = get_peft_model(model, lcfg)
        g = torch.Generator().manual_seed(200 + i)
        with torch.no_grad():
            for name, p in peft.named_parameters():
                if "lora_" in name:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
        peft.save_pretrained(os.path.join(d, "adapter"))
        vocab = model.config.vocab_size
        for j, (B, T) in enumerate(BATCHES[case]):
            tokens, tgt = batch(vocab, B, T, 300 + 10 * i + j)
            save_file({"tokens": tokens, "targets": tgt}, os.path.join(d, f"batch{j}.safetensors"))
            peft.float()
            with torch.no_grad():
                logits = peft(input_ids=tokens.long()).logits
            ref = {"logits": logits.reshape(B * T, -1).contiguous(),
                   "loss": loss_of(logits, tgt).reshape(1)}
            if j == 0:
                # What generation sees: position t's logits from the forward of tokens 0..t
                # (phi3 longrope: short factors up to original_max_position_embeddings).
                with torch.no_grad():
                    ref["prefix_logits"] = torch.stack([
                        peft(input_ids=tokens[:1, :t + 1].long()).logits[0, -1]
                        for t in range(T)])
            if j == 0:
                # The F16 GGUF's base: every 2-D weight rounded to F16, computed in fp32 (the
                # LoRA A and B are not 2-D weights of the base and stay as they are).
                saved = {n: p.detach().clone() for n, p in peft.named_parameters()
                         if p.ndim == 2 and "lora_" not in n}
                with torch.no_grad():
                    for n, p in peft.named_parameters():
                        if n in saved:
                            p.copy_(p.half().float())
                    ref["logits_f16"] = peft(input_ids=tokens.long()).logits.reshape(B * T, -1)
                    for n, p in peft.named_parameters():
                        if n in saved:
                            p.copy_(saved[n])
            peft.double()
            peft.zero_grad()
            logits64 = peft(input_ids=tokens.long()).logits
            ref["logits64"] = logits64.detach().reshape(B * T, -1).float().contiguous()
            loss = loss_of(logits64, tgt)
            loss.backward()
            for name, p in peft.named_parameters():
                if "lora_" in name:
                    # PEFT names parameters "...lora_A.default.weight", saves "...lora_A.weight"
                    ref["grad." + name.replace(".default", "")] = p.grad.float().contiguous()
            peft.float()
            save_file(ref, os.path.join(d, f"ref{j}.safetensors"))
        print(f"made {case}: {sum(p.numel() for p in model.parameters())} parameters")


def compare(what, got, want, tol, relative=False):
    got, want = got.double(), want.double()
    if got.shape != want.shape:
        print(f"FAIL: {what}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        sys.exit(1)
    if relative:
        err = ((got - want).norm() / max(want.norm().item(), 1e-30)).item()
    else:
        err = (got - want).abs().max().item()
    print(f"{what}: {'relative' if relative else 'max abs'} error {err:.2e} (tolerance {tol:g})")
    if not err <= tol:
        print(f"FAIL: {what} differs from transformers/PEFT by {err:.3e} > {tol:g}")
        sys.exit(1)
    return err


def check(work):
    for i, (case, build) in enumerate(CASES.items()):
        d = os.path.join(work, case)
        for j, _ in enumerate(BATCHES[case]):
            ref = load_file(os.path.join(d, f"ref{j}.safetensors"))
            out = load_file(os.path.join(d, f"out{j}.safetensors"))
            compare(f"{case} batch {j} logits", out["logits"], ref["logits"], TOL_LOGITS)
            compare(f"{case} batch {j} logits vs float64", out["logits"], ref["logits64"],
                    TOL_LOGITS)
            compare(f"{case} batch {j} loss", out["loss"], ref["loss"], TOL_LOSS)
            grads = sorted(k for k in ref if k.startswith("grad."))
            if sorted(k for k in out if k.startswith("grad.")) != grads:
                print(f"FAIL: {case}: gradient names {sorted(k for k in out if k.startswith('grad.'))}"
                      f" differ from PEFT's {grads}")
                sys.exit(1)
            worst = max(compare(f"{case} batch {j} {k}", out[k], ref[k], TOL_GRAD_REL, True)
                        for k in grads)
            print(f"{case} batch {j}: {len(grads)} LoRA gradients, worst relative error {worst:.2e}")
        ref = load_file(os.path.join(d, "ref0.safetensors"))
        out = load_file(os.path.join(d, "gguf_out0.safetensors"))
        if case in NO_GGUF_EQUIVALENT:
            # llama.cpp's gpt2 has no key for scale_attn_by_inverse_layer_idx: its GGUF is plain
            # GPT-2 attention, in llama.cpp as in medtune, so the logits must differ.
            if not (out["logits"] - ref["logits"]).abs().max() > 1e-3:
                print(f"FAIL: {case}: the GGUF gives the HF logits although it cannot carry "
                      "scale_attn_by_inverse_layer_idx")
                sys.exit(1)
            print(f"{case} GGUF: plain GPT-2 attention, as llama.cpp reads it")
        else:
            compare(f"{case} GGUF (llama.cpp conventions) logits", out["logits"], ref["logits"],
                    TOL_LOGITS)
        if case not in NO_GGUF_EQUIVALENT:
            # Held as stored: the fused F16 matrices are split into row views, not converted.
            out = load_file(os.path.join(d, "gguf_f16_out0.safetensors"))
            compare(f"{case} F16 GGUF logits", out["logits"], ref["logits_f16"], TOL_LOGITS)
        out = load_file(os.path.join(d, "decode.safetensors"))
        compare(f"{case} KV-cache decoder logits (row 0, step by step)", out["logits"],
                ref["prefix_logits"], TOL_LOGITS)
        # The adapter medtune trained and exported, loaded by PEFT itself.
        conf = json.load(open(os.path.join(d, "trained", "adapter_config.json")))
        conv1d = case.startswith("gpt2")
        if conf.get("fan_in_fan_out") is not conv1d:
            print(f"FAIL: {case}: adapter_config.json fan_in_fan_out is "
                  f"{conf.get('fan_in_fan_out')}, PEFT needs {conv1d}")
            sys.exit(1)
        base = type(build()[0]).from_pretrained(os.path.join(d, "model"), dtype=torch.float32)
        peft = PeftModel.from_pretrained(base, os.path.join(d, "trained"))
        b = load_file(os.path.join(d, "batch0.safetensors"))
        with torch.no_grad():
            logits = peft(input_ids=b["tokens"].long()).logits
        out = load_file(os.path.join(d, "trained_out.safetensors"))
        B, T = b["tokens"].shape
        moved = (out["logits"] - load_file(os.path.join(d, "ref0.safetensors"))["logits"]).abs().max()
        if not moved > 1e-3:
            print(f"FAIL: {case}: training changed the logits by only {moved:.2e}")
            sys.exit(1)
        compare(f"{case} trained adapter (PEFT load) logits", out["logits"],
                logits.reshape(B * T, -1), TOL_LOGITS)
        compare(f"{case} trained adapter (PEFT load) loss", out["loss"],
                loss_of(logits, b["targets"]).reshape(1), TOL_LOSS)
        merged = type(build()[0]).from_pretrained(os.path.join(d, "merged"),
                                                  dtype=torch.float32)
        with torch.no_grad():
            m_logits = merged(input_ids=b["tokens"].long()).logits
        compare(f"{case} medtune merge (transformers load) logits", m_logits, logits, TOL_LOGITS)
        check_gguf_adapter(case, d, peft)
    print("all comparisons passed")


def check_gguf_adapter(case, d, peft):
    """Every lora_a/lora_b pair of the exported GGUF adapter: llama.cpp's names, ne that fit
    the base GGUF tensor, and scale * B A equal to PEFT's delta in GGUF's [out, in] layout."""
    r = gguf.GGUFReader(os.path.join(d, "adapter.gguf"))
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    want_arch = "gpt2" if case.startswith("gpt2") else "phi3"
    if arch != want_arch:
        print(f"FAIL: {case}: adapter.gguf general.architecture {arch}, expected {want_arch}")
        sys.exit(1)
    alpha = float(r.fields["adapter.lora.alpha"].parts[-1][0])
    base = {t.name: t for t in gguf.GGUFReader(os.path.join(d, "model.gguf")).tensors}
    t = {x.name: x for x in r.tensors}
    deltas = {}
    for name, module in peft.named_modules():
        if hasattr(module, "get_delta_weight") and "default" in getattr(module, "lora_A", {}):
            delta = module.get_delta_weight("default").detach().float()
            if case.startswith("gpt2"):
                delta = delta.T  # PEFT's delta follows Conv1D's [in, out]
            deltas[name] = delta
    gg = {"qkv_proj": "attn_qkv", "o_proj": "attn_output", "gate_up_proj": "ffn_up",
          "down_proj": "ffn_down", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output",
          "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
    n = 0
    for name, delta in deltas.items():
        layer = int(name.split(".layers.")[-1].split(".")[0]) if ".layers." in name else \
            int(name.split(".h.")[-1].split(".")[0])
        key = next(v for k, v in gg.items() if name.endswith(k))
        a, b = t.get(f"blk.{layer}.{key}.weight.lora_a"), t.get(f"blk.{layer}.{key}.weight.lora_b")
        w = base[f"blk.{layer}.{key}.weight"]
        if a is None or b is None:
            print(f"FAIL: {case}: adapter.gguf lacks blk.{layer}.{key}.weight.lora_a/b")
            sys.exit(1)
        rank = int(a.shape[1])
        if list(a.shape) != [w.shape[0], rank] or list(b.shape) != [rank, w.shape[1]]:
            print(f"FAIL: {case}: {key} ne a {list(a.shape)} b {list(b.shape)} do not fit the "
                  f"base ne {list(w.shape)}")
            sys.exit(1)
        A = torch.tensor(np.array(a.data)).reshape(rank, -1)
        B = torch.tensor(np.array(b.data)).reshape(-1, rank)
        got = (alpha / rank) * (B @ A)
        if (got - delta).abs().max() > 1e-6:
            print(f"FAIL: {case}: adapter.gguf {key} layer {layer}: scale * B A differs from PEFT's "
                  f"delta by {(got - delta).abs().max():.2e}")
            sys.exit(1)
        n += 1
    print(f"{case} adapter.gguf: {n} LoRA pairs with llama.cpp names, deltas equal PEFT's")


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
