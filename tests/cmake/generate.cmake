# Area `generate`: KV-cache decoding, sampling, streaming text, `medtune generate`.
set(GEN_PY ${CMAKE_CURRENT_SOURCE_DIR}/generate)

# Greedy decode equals the shared models' REFERENCE_greedy.json (ids, text, logits 0..2).
foreach(m stories260K tinystories-656k)
  medtune_add_test(NAME generate_reference_${m} COMMAND test_generate reference ${m} LABELS generate)
endforeach()
# The cache is used and exact: every prefill row and step equal a full lm_logits recompute
# (with a non-zero LoRA adapter), one position computed per step.
medtune_add_test(NAME generate_cache_random_qwen2 COMMAND test_generate cache LABELS generate)
foreach(m stories260K tinystories-656k)
  medtune_add_test(NAME generate_cache_${m} COMMAND test_generate cache ${m} LABELS generate)
endforeach()
medtune_add_test(NAME generate_sampler COMMAND test_generate sampler LABELS generate)
# Characters split across byte tokens stream as whole UTF-8 (SentencePiece byte fallback and
# byte-level BPE).
medtune_add_test(NAME generate_stream_stories260K
  COMMAND test_generate stream ${MEDTUNE_SHARED}/models/stories260K LABELS generate)
medtune_add_test(NAME generate_stream_smollm2
  COMMAND test_generate stream ${CMAKE_SOURCE_DIR}/.cache/SmolLM2-135M-Instruct.Q4_1.gguf
  LABELS generate)
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
