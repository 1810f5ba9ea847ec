"""The architectures the oracle tests (check_oracle.py) run, one entry per case.

An entry is the transformers model class and its config (random weights, saved by
save_pretrained in fp32), the sequence shape, and how llama.cpp's converter writes the model to
GGUF (arch name, tensor names, what it does to norm weights, extra metadata); "gguf": None skips
the GGUF part. "train_targets" (default: lora_targets) is what the `medtune train` config's
lora.targets says ("all-linear" or ["all-linear"] must give lora_targets). To add an architecture, add an entry: the harness needs nothing else as long as
the HF -> GGUF name map below (GGUF_NAMES) covers its tensors and medtune loads the class.

Sizes are deliberately odd: head_dim != hidden / heads, GQA, nothing a multiple of 8, and for
gemma3 a sliding window (5) shorter than the sequence (24) with local and global rope bases.
"""

# HF tensor name (after "model.", layer part replaced by {l}) -> llama.cpp GGUF name
# (gguf-py constants.py TENSOR_NAMES).
GGUF_NAMES = {
    "embed_tokens.weight": "token_embd.weight",
    "norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "layers.{l}.input_layernorm.weight": "blk.{l}.attn_norm.weight",
    "layers.{l}.self_attn.q_proj.weight": "blk.{l}.attn_q.weight",
    "layers.{l}.self_attn.k_proj.weight": "blk.{l}.attn_k.weight",
    "layers.{l}.self_attn.v_proj.weight": "blk.{l}.attn_v.weight",
    "layers.{l}.self_attn.o_proj.weight": "blk.{l}.attn_output.weight",
    "layers.{l}.self_attn.q_proj.bias": "blk.{l}.attn_q.bias",
    "layers.{l}.self_attn.k_proj.bias": "blk.{l}.attn_k.bias",
    "layers.{l}.self_attn.v_proj.bias": "blk.{l}.attn_v.bias",
    "layers.{l}.self_attn.o_proj.bias": "blk.{l}.attn_output.bias",
    "layers.{l}.self_attn.q_norm.weight": "blk.{l}.attn_q_norm.weight",
    "layers.{l}.self_attn.k_norm.weight": "blk.{l}.attn_k_norm.weight",
    "layers.{l}.mlp.gate_proj.weight": "blk.{l}.ffn_gate.weight",
    "layers.{l}.mlp.up_proj.weight": "blk.{l}.ffn_up.weight",
    "layers.{l}.mlp.down_proj.weight": "blk.{l}.ffn_down.weight",
}
# Llama-style layers: post_attention_layernorm is the MLP's input norm.
LLAMA_NORMS = {"layers.{l}.post_attention_layernorm.weight": "blk.{l}.ffn_norm.weight"}
# Gemma 2/3 layers: four norms.
GEMMA_NORMS = {
    "layers.{l}.post_attention_layernorm.weight": "blk.{l}.post_attention_norm.weight",
    "layers.{l}.pre_feedforward_layernorm.weight": "blk.{l}.ffn_norm.weight",
    "layers.{l}.post_feedforward_layernorm.weight": "blk.{l}.post_ffw_norm.weight",
}

LORA_ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

COMMON = {"hidden_size": 68, "intermediate_size": 92, "num_attention_heads": 4,
          "num_key_value_heads": 2, "head_dim": 22, "rms_norm_eps": 1e-6,
          "max_position_embeddings": 256, "initializer_range": 0.15,
          "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}

CASES = {
    "qwen3": {
        "model_class": "Qwen3ForCausalLM", "config_class": "Qwen3Config",
        "config": dict(COMMON, num_hidden_layers=2, rope_theta=10000.0,
                       tie_word_embeddings=False),
        "lora_targets": LORA_ALL, "gguf_arch": "qwen3",
        "gguf": {"arch": "qwen3", "norms": LLAMA_NORMS, "norm_shift": 0.0},
    },
    "qwen3_tied_bias": {
        "model_class": "Qwen3ForCausalLM", "config_class": "Qwen3Config",
        "config": dict(COMMON, num_hidden_layers=2, rope_theta=50000.0,
                       tie_word_embeddings=True, attention_bias=True),
        "lora_targets": LORA_ALL, "train_targets": "all-linear", "gguf_arch": "qwen3",
        "gguf": {"arch": "qwen3", "norms": LLAMA_NORMS, "norm_shift": 0.0},
    },
    "gemma3_text": {
        "model_class": "Gemma3ForCausalLM", "config_class": "Gemma3TextConfig",
        "config": dict(COMMON, num_hidden_layers=4, query_pre_attn_scalar=30,
                       sliding_window=5, tie_word_embeddings=True,
                       layer_types=["sliding_attention", "full_attention",
                                    "sliding_attention", "full_attention"],
                       rope_parameters={
                           "full_attention": {"rope_type": "linear", "factor": 2.0,
                                              "rope_theta": 1000000.0},
                           "sliding_attention": {"rope_type": "default",
                                                 "rope_theta": 10000.0}}),
        "lora_targets": LORA_ALL, "train_targets": ["all-linear"], "gguf_arch": "gemma3",
        "gguf": None,  # query_pre_attn_scalar != head_dim has no GGUF form (see gemma3_gguf)
    },
    "gemma3_softcap": {
        "model_class": "Gemma3ForCausalLM", "config_class": "Gemma3TextConfig",
        "config": dict(COMMON, num_hidden_layers=3, query_pre_attn_scalar=22,
                       sliding_window=5, final_logit_softcapping=3.0,
                       layer_types=["sliding_attention", "sliding_attention", "full_attention"]),
        "lora_targets": LORA_ALL, "gguf_arch": "gemma3",
        "gguf": None,
    },
    # The form llama.cpp can hold: attention scale 1/sqrt(head_dim), every third layer global
    # (sliding_window_pattern 3), local rope base 10000, linear scaling on the global layers.
    "gemma3_gguf": {
        "model_class": "Gemma3ForCausalLM", "config_class": "Gemma3TextConfig",
        "config": dict(COMMON, num_hidden_layers=3, query_pre_attn_scalar=22,
                       sliding_window=5, tie_word_embeddings=True,
                       layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                       rope_parameters={
                           "full_attention": {"rope_type": "linear", "factor": 4.0,
                                              "rope_theta": 1000000.0},
                           "sliding_attention": {"rope_type": "default",
                                                 "rope_theta": 10000.0}}),
        "lora_targets": LORA_ALL, "gguf_arch": "gemma3",
        "gguf": {"arch": "gemma3", "norms": GEMMA_NORMS, "norm_shift": 1.0,
                 "sliding_window_pattern": 3},
    },    # A BF16 checkpoint: medtune rounds the embedding scale to BF16 as transformers does
    # when it runs the checkpoint in its dtype ("dtype": the weights are saved in it, both
    # sides then compute in fp32 from them).
    "gemma3_bf16": {
        "model_class": "Gemma3ForCausalLM", "config_class": "Gemma3TextConfig",
        "config": dict(COMMON, num_hidden_layers=2, query_pre_attn_scalar=22,
                       sliding_window=5, layer_types=["sliding_attention", "full_attention"]),
        "dtype": "bfloat16", "lora_targets": LORA_ALL, "gguf_arch": "gemma3", "gguf": None,
        "text_only": True,
    },
    # A multimodal gemma3 checkpoint (a tiny SigLIP vision tower): medtune loads the text
    # model from text_config and the language_model weights; logits of text-only input.
    # "text_only": the LoRA, training and GGUF parts are not run (PEFT names the modules of
    # the multimodal model differently).
    "gemma3_multimodal": {
        "model_class": "Gemma3ForConditionalGeneration", "config_class": "Gemma3Config",
        "config": {"text_config": dict(COMMON, num_hidden_layers=2, query_pre_attn_scalar=22,
                                       sliding_window=5,
                                       layer_types=["sliding_attention", "full_attention"]),
                   "vision_config": {"hidden_size": 16, "intermediate_size": 20,
                                     "num_hidden_layers": 1, "num_attention_heads": 2,
                                     "image_size": 28, "patch_size": 14},
                   "mm_tokens_per_image": 4},
        "lora_targets": LORA_ALL, "gguf_arch": "gemma3", "gguf": None, "text_only": True,
    },
    # phi3 and gpt2 from BF16 checkpoints: the fused matrices (qkv_proj, gate_up_proj, c_attn)
    # are held as stored and split into row views, gpt2's Conv1D matrices are transposed at
    # load in BF16; logits of the trunk and the KV-cache decoder (BF16 block kernels). phi3's
    # pretraining length (8) is below the decoder's 12-token prefill, so both sides run on the
    # long factors throughout. The fp32 LoRA, training, merge, GGUF and short-to-long switch
    # checks of both are tests/arch/check_phi3_gpt2.py.
    "phi3_bf16": {
        "model_class": "Phi3ForCausalLM", "config_class": "Phi3Config",
        "config": dict(hidden_size=60, intermediate_size=37, num_hidden_layers=2,
                       num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64,
                       original_max_position_embeddings=8, partial_rotary_factor=0.6,
                       rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                        "partial_rotary_factor": 0.6,
                                        "short_factor": [1.0, 1.3, 2.1],
                                        "long_factor": [1.7, 3.9, 7.5]},
                       sliding_window=None, tie_word_embeddings=False, initializer_range=0.08,
                       pad_token_id=0, bos_token_id=1, eos_token_id=2),
        "dtype": "bfloat16", "lora_targets": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
        "gguf_arch": "phi3", "gguf": None, "text_only": True,
    },
    "gpt2_bf16": {
        "model_class": "GPT2LMHeadModel", "config_class": "GPT2Config",
        "config": dict(n_embd=60, n_layer=2, n_head=5, n_inner=74, n_positions=40,
                       layer_norm_epsilon=1e-5, activation_function="gelu_new",
                       initializer_range=0.15, bos_token_id=1, eos_token_id=2),
        "dtype": "bfloat16", "lora_targets": ["c_attn", "c_proj", "c_fc"], "gguf_arch": "gpt2",
        "gguf": None, "text_only": True,
    },
}
