# Checkpoint directories under faults: a crash at every change of the checkpoint tree while a
# checkpoint is replaced, and failed allocations while checkpoints are listed. The faults come
# from tests/checkpoints/fault_inject.c, preloaded into medtune (LD_PRELOAD).
add_library(medtune_fault_inject MODULE ${CMAKE_CURRENT_SOURCE_DIR}/checkpoints/fault_inject.c)
target_link_libraries(medtune_fault_inject PRIVATE ${CMAKE_DL_LIBS})
foreach(check crash_window oom fingerprint versions state_checksum state_tensors)
  medtune_add_test(NAME checkpoints_${check}
    COMMAND ${CMAKE_COMMAND} -E env MEDTUNE_FAULT_LIB=$<TARGET_FILE:medtune_fault_inject>
            ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/checkpoints/check_${check}.py
    LABELS checkpoints train)
endforeach()
