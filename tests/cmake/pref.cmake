# Preference objectives (DPO, ORPO): the PyTorch twin on a fresh clone (losses, metrics,
# gradients, ln 2 at a fresh adapter, gradient accumulation), TRL 1.16 itself from the oracle
# venv (skips without it), and the runs: refusals, bit-exact resume, eval --preference.
foreach(check pref_twin pref_trl pref_runs)
  medtune_add_test(NAME train_${check}
    COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pref/check_${check}.py
    LABELS train)
endforeach()
