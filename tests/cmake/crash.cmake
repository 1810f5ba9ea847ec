# Crash safety beyond one training run (docs/design.md, section 8): kill -9 during the writes of
# prep, export and merge (each killed before a seeded sample of its file-changing syscalls, via
# strace), and a full disk (a small tmpfs) for each of them.
foreach(cmd prep export merge)
  medtune_add_test(NAME crash_kill9_${cmd}
    COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/crash/check_kill9_outputs.py ${cmd}
    LABELS crash)
endforeach()

# kill -9 of `medtune train` at 100 seeded random moments of a run that checkpoints every step,
# each followed by --resume: the losses and the final adapter equal an uninterrupted run's.
medtune_add_test(NAME crash_kill9_train
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/crash/check_kill9_train.py
  LABELS crash)

# kill -9 in the replace window (a resumed run saving its checkpoint again with no step in
# between), before every rename/unlink/rmdir of that save: the next --resume finishes the run.
medtune_add_test(NAME crash_kill9_replace
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/crash/check_kill9_replace.py
  LABELS crash)

# A full disk (a small tmpfs, filled to leave 0 .. the output's size free) during prep, export
# and merge: one error line naming the file, the earlier output untouched, nothing left over.
foreach(cmd prep export merge)
  medtune_add_test(NAME crash_full_disk_${cmd}
    COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/crash/check_full_disk.py ${cmd}
    LABELS crash)
endforeach()
