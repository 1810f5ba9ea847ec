# Architecture oracle tests (area arch): one ctest per case of tests/arch/arch_cases.py, each
# comparing medtune with transformers and PEFT in the oracle venv (skipped without it).
set(MEDTUNE_ARCH_CASES qwen3 qwen3_tied_bias gemma3_text gemma3_softcap gemma3_gguf
                       gemma3_multimodal gemma3_bf16 phi3_bf16 gpt2_bf16)
foreach(case ${MEDTUNE_ARCH_CASES})
  medtune_add_test(NAME arch_${case}
    COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/arch/check_oracle.py ${case}
    LABELS arch)
endforeach()
# Every command (info, prep, train, eval, generate, export, merge) on each architecture from its
# HF directory and its GGUF file, and resume for phi3 / gpt2 (tests/arch/check_cli_chain.py;
# the oracle venv writes the models, skipped without it).
medtune_add_test(NAME arch_cli
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/arch/check_cli_chain.py qwen3 gemma3 phi3
          gpt2
  LABELS arch)
