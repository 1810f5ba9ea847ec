# Area `generate`: KV-cache decoding, sampling, streaming text, `medtune generate`.
set(GEN_PY ${CMAKE_CURRENT_SOURCE_DIR}/generate)

# Greedy decode through the KV cache equals REFERENCE_greedy.json (ids, text, logits 0..2): one
# the PyTorch twin writes for a random-weight GQA llama, and the shared models' when present.
medtune_add_test(NAME generate_reference
  COMMAND ${MEDTUNE_PYTHON} ${GEN_PY}/check_reference.py LABELS generate python)
# The cache is used and exact: every prefill row and step equal a full lm_logits recompute
# (with a non-zero LoRA adapter), one position computed per step: a random in-memory qwen2,
# then the shared models when present.
medtune_add_test(NAME generate_cache COMMAND test_generate cache
  ${MEDTUNE_SHARED}/models/stories260K ${MEDTUNE_SHARED}/models/tinystories-656k
  LABELS generate)
medtune_add_test(NAME generate_sampler COMMAND test_generate sampler LABELS generate)
# Characters split across byte tokens stream as whole UTF-8: byte-level BPE (SmolLM2) and
# SentencePiece byte fallback (stories260K, when ../shared is there).
medtune_add_test(NAME generate_stream
  COMMAND test_generate stream ${CMAKE_SOURCE_DIR}/.cache/SmolLM2-135M-Instruct.Q4_1.gguf
  ${MEDTUNE_SHARED}/models/stories260K LABELS generate)
# Greedy `medtune generate` equals a full-recompute greedy loop over the PyTorch twin: the real
# SmolLM2 GGUF with its chat template on a medical question, and a random-weight llama (plus
# tinystories when ../shared is there) with a non-zero PEFT adapter.
foreach(case smollm2_chat adapter)
  medtune_add_test(NAME generate_twin_${case}
    COMMAND ${MEDTUNE_PYTHON} ${GEN_PY}/check_twin.py ${case} LABELS generate python)
endforeach()
# The command line: --help, streaming and seeded sampling, stop at end-of-turn, refusals.
foreach(case help sampling stop refusals)
  medtune_add_test(NAME generate_cli_${case}
    COMMAND ${MEDTUNE_PYTHON} ${GEN_PY}/check_cli.py ${case} LABELS generate python cli)
endforeach()
