"""The twin's Llama/Qwen2 forward pass with PEFT-style LoRA, in plain torch (autograd backward).

Numerics follow Hugging Face transformers' eager Llama: fp32 RMSNorm, rotate_half RoPE with
fp32 inv_freq, softmax attention scaled by 1/sqrt(head_dim) with GQA, SwiGLU, tied or separate
lm_head. Every function works in the dtype of the tensors it is given (float64 for gradcheck).
"""
import math

import torch
import torch.nn.functional as F

from model_io import HF_PROJ

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def rope_inv_freq(cfg):
    """inv_freq [D/2] in fp32 as transformers computes it, with the config's rope scaling."""
    D = cfg["head_dim"]
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    sc = cfg.get("rope_scaling")
    if sc is None or sc["type"] == "linear":
        return inv
    if sc["type"] == "freq_factors":
        return inv / torch.tensor(sc["factors"], dtype=torch.float32)
    if sc["type"] != "llama3":
        raise ValueError(f"rope scaling {sc['type']} is not supported")
    factor = sc["factor"]
    lo, hi = sc["low_freq_factor"], sc["high_freq_factor"]
    old_len = sc["original_max_position_embeddings"]
    lo_wavelen = old_len / lo
    hi_wavelen = old_len / hi
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > lo_wavelen, inv / factor, inv)
    smooth = (old_len / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < hi_wavelen) & ~(wavelen > lo_wavelen)
    return torch.where(medium, smoothed, scaled)


def rope_cos_sin(cfg, positions):
    """cos, sin [B, T, D] in fp32 for integer positions [B, T]."""
    inv = rope_inv_freq(cfg)
    pos = positions.float()
    sc = cfg.get("rope_scaling")
    if sc is not None and sc["type"] == "linear":
        pos = pos / sc["factor"]
    freqs = pos[..., None] * inv
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rms_norm(x, w, eps):
    # transformers upcasts to fp32 for the statistics; keep float64 when gradchecking.
    xf = x if x.dtype == torch.float64 else x.float()
    xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return w * xf.to(x.dtype)


def lora_name(layer, proj, part):
    """PEFT's tensor name, e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight."""
    return f"base_model.model.model.layers.{layer}.{HF_PROJ[proj]}.lora_{part}.weight"


def attention_mask(doc_ids):
    """[B, 1, T, T] bool: query i may see key j when j <= i and both are in one document."""
    T = doc_ids.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    same = doc_ids[:, :, None] == doc_ids[:, None, :]
    return (same & causal)[:, None]


class Twin:
    """Frozen base weights + LoRA adapter {peft_name: Parameter}; forward gives logits."""

    def __init__(self, cfg, weights, lora, scale, dtype=torch.float32):
        self.cfg = cfg
        # Converted once per distinct tensor, so a tied embedding stays one tensor.
        converted = {}
        self.w = {}
        for k, v in weights.items():
            if id(v) not in converted:
                converted[id(v)] = v.to(dtype).requires_grad_(False)
            self.w[k] = converted[id(v)]
        self.lora = lora
        self.scale = scale
        self.dtype = dtype

    def proj(self, x, layer, name):
        key = f"model.layers.{layer}.{HF_PROJ[name]}"
        y = F.linear(x, self.w[key + ".weight"], self.w.get(key + ".bias"))
        a = self.lora.get(lora_name(layer, name, "A"))
        if a is not None:
            b = self.lora[lora_name(layer, name, "B")]
            y = y + self.scale * F.linear(F.linear(x, a), b)
        return y

    def forward(self, tokens, positions, doc_ids):
        cfg, w = self.cfg, self.w
        B, T = tokens.shape
        H, KV, D = cfg["n_heads"], cfg["n_kv_heads"], cfg["head_dim"]
        eps = cfg["rms_norm_eps"]
        cos, sin = rope_cos_sin(cfg, positions)
        cos = cos.to(self.dtype)[:, None]
        sin = sin.to(self.dtype)[:, None]
        mask = attention_mask(doc_ids)
        x = w["model.embed_tokens.weight"][tokens.long()]
        for i in range(cfg["n_layers"]):
            p = f"model.layers.{i}."
            h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
            q = self.proj(h, i, "q_proj").view(B, T, H, D).transpose(1, 2)
            k = self.proj(h, i, "k_proj").view(B, T, KV, D).transpose(1, 2)
            v = self.proj(h, i, "v_proj").view(B, T, KV, D).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if KV != H:
                k = k.repeat_interleave(H // KV, dim=1)
                v = v.repeat_interleave(H // KV, dim=1)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
            s = s.masked_fill(~mask, float("-inf"))
            att = torch.softmax(s, dim=-1) @ v
            att = att.transpose(1, 2).reshape(B, T, H * D)
            x = x + self.proj(att, i, "o_proj")
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
            g = F.silu(self.proj(h, i, "gate_proj")) * self.proj(h, i, "up_proj")
            x = x + self.proj(g, i, "down_proj")
        x = rms_norm(x, w["model.norm.weight"], eps)
        return F.linear(x, w["lm_head.weight"])


def next_token_loss(logits, targets):
    """Cross-entropy averaged over targets != -1."""
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1).long(), ignore_index=-1)


def lora_shapes(cfg, r, targets):
    """{peft_name: shape} for every LoRA tensor, layer-major, targets in TARGETS order."""
    C, F_, H, KV, D = (cfg["hidden_size"], cfg["intermediate_size"], cfg["n_heads"],
                       cfg["n_kv_heads"], cfg["head_dim"])
    io = {"q_proj": (C, H * D), "k_proj": (C, KV * D), "v_proj": (C, KV * D),
          "o_proj": (H * D, C), "gate_proj": (C, F_), "up_proj": (C, F_), "down_proj": (F_, C)}
    out = {}
    for i in range(cfg["n_layers"]):
        for t in TARGETS:
            if t in targets:
                fan_in, fan_out = io[t]
                out[lora_name(i, t, "A")] = (r, fan_in)
                out[lora_name(i, t, "B")] = (fan_out, r)
    return out


def lora_init(cfg, r, targets, seed, b_std=0.02, dtype=torch.float32):
    """A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming init); B ~ N(0, b_std), non-zero so that
    the gradients of A are non-zero too."""
    g = torch.Generator().manual_seed(seed)
    lora = {}
    for name, shape in lora_shapes(cfg, r, targets).items():
        if ".lora_A." in name:
            bound = 1.0 / math.sqrt(shape[1])
            t = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound
        else:
            t = torch.randn(shape, generator=g, dtype=torch.float64) * b_std
        # Rounded to fp32 first: the C side starts from the stored fp32 values.
        lora[name] = torch.nn.Parameter(t.float().to(dtype))
    return lora
