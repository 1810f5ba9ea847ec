# Training loop: parity with the PyTorch twin over 20 optimizer steps, bit-exact resume after
# SIGTERM and kill -9, and the refusals (mismatched resume, NaN, unwritable out_dir);
# recompute: bit-equal to no recompute, switched on resume, the memory plan and its refusal.
foreach(check train_parity resume refusals threads recompute)
  medtune_add_test(NAME train_${check}
    COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/train/check_${check}.py
    LABELS train)
endforeach()

file(GLOB MEDTUNE_EXAMPLE_CONFIGS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/configs/*.json)
# eval suites are neither prep nor train configs: eval_suite checks configs/medical_suite.json
list(FILTER MEDTUNE_EXAMPLE_CONFIGS EXCLUDE REGEX "_suite\\.json$")
medtune_add_test(NAME example_configs
  COMMAND $<TARGET_FILE:test_example_configs> ${MEDTUNE_EXAMPLE_CONFIGS} LABELS train)

# Every computation of a training step is bit-identical with 1 to 4 threads (no model files).
medtune_add_test(NAME train_thread_independence COMMAND test_threads LABELS train)

# eval_mcq during training, checkpoints/best, best.patience, resume with best tracking, export
# --best (fresh-clone model and benchmark files).
medtune_add_test(NAME train_mcq_best
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/train/check_mcq_best.py LABELS train)
medtune_add_test(NAME mpi_mcq_best
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/train/check_mcq_best_mpi.py LABELS mpi)
