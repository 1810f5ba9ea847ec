# Area `fuzz`: libFuzzer harnesses, one per parser (tests/fuzz/fuzz_<parser>.c, docs/fuzzing.md).
# Every build (gcc too) links each harness with a replay driver and replays the regression
# inputs (tests/fuzz/regress/<parser>/, crashes found by fuzzing, now fixed) and the committed
# seed corpus: ctest fuzz_replay_<parser>. With -DMEDTUNE_FUZZ=ON (clang) each harness is also
# a libFuzzer binary and ctest fuzz_<parser> fuzzes it for MEDTUNE_FUZZ_SECONDS under
# ASan+UBSan, starting from a copy of the seeds (label `fuzz`; tools/fuzz.sh ci runs them).
set(FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
set(MEDTUNE_FUZZ_PARSERS safetensors gguf tokenizer config prep_records xml shards state metrics)
set(MEDTUNE_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzz_<parser> ctest fuzzes")
# libhdf5 allocates (and zero-fills lazily) sizes read from a corrupt file, gigabytes at times:
# libFuzzer's malloc limit (= the 2 GB RSS limit) would stop on them, although they cost no
# memory until touched. For the state harness only the RSS limit applies (tools/fuzz.sh too).
set(FUZZ_EXTRA_state -malloc_limit_mb=1048576)

add_library(medtune_fuzz_common STATIC ${FUZZ_DIR}/fuzz_common.c)
target_link_libraries(medtune_fuzz_common PUBLIC medtune_core)

foreach(parser ${MEDTUNE_FUZZ_PARSERS})
  add_executable(fuzz_${parser}_replay ${FUZZ_DIR}/fuzz_${parser}.c ${FUZZ_DIR}/fuzz_replay.c)
  target_link_libraries(fuzz_${parser}_replay PRIVATE medtune_fuzz_common)
  set(inputs ${FUZZ_DIR}/corpus/${parser})
  if(EXISTS ${FUZZ_DIR}/regress/${parser})
    list(APPEND inputs ${FUZZ_DIR}/regress/${parser})
  endif()
  medtune_add_test(NAME fuzz_replay_${parser} COMMAND fuzz_${parser}_replay ${FUZZ_EXTRA_${parser}} ${inputs}
    LABELS fuzz_replay)

  if(MEDTUNE_FUZZ)
    add_executable(fuzz_${parser} ${FUZZ_DIR}/fuzz_${parser}.c)
    target_link_libraries(fuzz_${parser} PRIVATE medtune_fuzz_common)
    target_link_options(fuzz_${parser} PRIVATE -fsanitize=fuzzer)
    medtune_add_test(NAME fuzz_${parser}
      COMMAND ${CMAKE_COMMAND} -DFUZZER=$<TARGET_FILE:fuzz_${parser}> -DSEEDS=${FUZZ_DIR}/corpus/${parser}
              -DDICT=${FUZZ_DIR}/${parser}.dict -DWORK=${CMAKE_CURRENT_BINARY_DIR}/fuzz-work/${parser}
              -DSECONDS=${MEDTUNE_FUZZ_SECONDS} "-DEXTRA=${FUZZ_EXTRA_${parser}}"
              -P ${FUZZ_DIR}/run_fuzzer.cmake
      LABELS fuzz)
    set_tests_properties(fuzz_${parser} PROPERTIES TIMEOUT 600)
  endif()
endforeach()
