# bench/medical_results.sh --smoke (docs/results.md's pipeline with 2-step trainings and 2 items
# per suite task) end to end, and the structure and provenance of the table it prints. 478 s
# measured at nice 10 on the shared 2 cores (load average 26); skipped without SmolLM2 or
# ../shared.
medtune_add_test(NAME results_medical_smoke
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/results/check_medical_results.py
  LABELS results slow)
