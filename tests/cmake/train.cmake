# Training loop: parity with the PyTorch twin over 20 optimizer steps, bit-exact resume after
# SIGTERM and kill -9, and the refusals (mismatched resume, NaN, unwritable out_dir).
foreach(check train_parity resume refusals)
  medtune_add_test(NAME train_${check}
    COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/train/check_${check}.py
    LABELS train)
endforeach()
