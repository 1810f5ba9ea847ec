# phi3 and gpt2 against transformers + PEFT in the oracle venv (tests/arch/check_phi3_gpt2.py,
# medtune's side in tests/test_arch_run.c); skipped without the oracle venv.
medtune_add_test(NAME arch_phi3_gpt2
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/arch/check_phi3_gpt2.py
  LABELS arch)
