# Area `export`: `medtune export` (PEFT, GGUF LoRA), `medtune merge`, `medtune info` on
# adapters and checkpoints. Python checks live in tests/export/; PEFT/transformers interop runs
# in .cache/venv-peft (tests/requirements-peft.txt, installed by tools/bootstrap.sh).
set(EXPORT_PY ${CMAKE_CURRENT_SOURCE_DIR}/export)

medtune_add_test(NAME export_gguf_writer COMMAND test_gguf_write LABELS export)
foreach(case f32 sharded bf16 rss)
  medtune_add_test(NAME export_merge_${case}
    COMMAND ${MEDTUNE_PYTHON} ${EXPORT_PY}/check_merge.py ${case} LABELS export python)
endforeach()
# float64 twin of SmolLM2 as the reference: about a minute.
medtune_add_test(NAME export_merge_smollm2
  COMMAND ${MEDTUNE_PYTHON} ${EXPORT_PY}/check_merge.py smollm2 LABELS export python slow)
foreach(case llama qwen2 smollm2)
  medtune_add_test(NAME export_gguf_adapter_${case}
    COMMAND ${MEDTUNE_PYTHON} ${EXPORT_PY}/check_gguf_adapter.py ${case} LABELS export python)
endforeach()
foreach(case tinystories reverse refusals)
  medtune_add_test(NAME export_peft_${case}
    COMMAND ${MEDTUNE_PYTHON} ${EXPORT_PY}/check_peft.py ${case} LABELS export python)
endforeach()
medtune_add_test(NAME export_peft_smollm2
  COMMAND ${MEDTUNE_PYTHON} ${EXPORT_PY}/check_peft.py smollm2 LABELS export python slow)
medtune_add_test(NAME export_cli
  COMMAND ${MEDTUNE_PYTHON} ${EXPORT_PY}/check_cli.py LABELS export python cli)
# The tokenizer files merge writes for a GGUF base: HF tokenizers, AutoTokenizer, chat template.
medtune_add_test(NAME export_hf_tokenizer_smollm2
  COMMAND ${MEDTUNE_PYTHON} ${EXPORT_PY}/check_hf_tokenizer.py LABELS export python)
# `merge BASE.gguf ADAPTER OUT.gguf --type T` against a float64 reference merge (gguf-py).
foreach(case types same_q8_0 refuse)
  medtune_add_test(NAME export_merge_gguf_${case}
    COMMAND ${MEDTUNE_PYTHON} ${EXPORT_PY}/check_merge_gguf.py ${case} LABELS export python)
endforeach()
# llama.cpp (tools/llama_cpp.sh, cached in .cache/llama.cpp) loads merged GGUF files (llama,
# and phi3 / gpt2 with their fused tensors) and gives the logits of base + adapter; medtune's K-quant quantizers against llama.cpp's. Skipped when
# the build is absent.
foreach(case random smollm2 quantizer phi3 gpt2)
  medtune_add_test(NAME export_llama_cpp_${case}
    COMMAND ${MEDTUNE_PYTHON} ${EXPORT_PY}/check_merge_llama_cpp.py ${case}
    LABELS export python llama_cpp)
endforeach()
