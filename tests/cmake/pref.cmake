# Preference objectives (DPO, ORPO): the PyTorch twin on a fresh clone (losses, metrics,
# gradients, ln 2 at a fresh adapter, gradient accumulation, eval --preference), and the runs
# (refusals, bit-exact resume, threads, report charts, 2 ranks).
foreach(check pref_twin pref_runs)
  medtune_add_test(NAME train_${check}
    COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pref/check_${check}.py
    LABELS train)
endforeach()
# TRL 1.16 itself from the oracle venv (skips without it): five trainer constructions in
# the oracle's Python take minutes.
medtune_add_test(NAME train_pref_trl
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pref/check_pref_trl.py
  LABELS train slow)
# eval --preference with --ref-adapter against the twin (fresh clone, seconds).
medtune_add_test(NAME eval_pref_ref_adapter
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pref/check_pref_eval.py
  LABELS eval train)
