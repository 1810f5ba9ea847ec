# Area `quickstart`: `medtune quickstart` end to end (tests/quickstart/check_quickstart.py).
set(QS_PY ${CMAKE_CURRENT_SOURCE_DIR}/quickstart/check_quickstart.py)
# No SmolLM2 in MEDTUNE_CACHE: the announced tiny-model fallback runs the whole pipeline;
# outputs read back with tokenizers/jinja2, safetensors, gguf and numpy; the printed next
# commands all run.
medtune_add_test(NAME quickstart_fallback COMMAND ${MEDTUNE_PYTHON} ${QS_PY} fallback
  LABELS quickstart python)
# --help, usage errors, refusals, --tiny/--steps/--threads/--question, reproducible tiny model.
medtune_add_test(NAME quickstart_cli COMMAND ${MEDTUNE_PYTHON} ${QS_PY} cli
  LABELS quickstart python cli)
# The real SmolLM2-135M-Instruct (minutes): val loss down, outputs exist, answers change.
medtune_add_test(NAME quickstart_smollm2 COMMAND ${MEDTUNE_PYTHON} ${QS_PY} smollm2
  LABELS quickstart python slow)
