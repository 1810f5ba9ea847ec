# One fixed-time libFuzzer run for ctest (tests/cmake/fuzz.cmake): fuzzes a fresh copy of the
# committed seeds (the seed directory stays as committed) and fails on any crash, leak,
# sanitizer report, timeout or out-of-memory, leaving the input in WORK/ (crash-*, leak-*...).
# cmake -DFUZZER=bin -DSEEDS=dir -DDICT=file -DWORK=dir -DSECONDS=n [-DEXTRA=flags] -P run_fuzzer.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus)
file(GLOB seeds ${SEEDS}/*)
if(NOT seeds)
  message(FATAL_ERROR "no seed inputs in ${SEEDS}")
endif()
file(COPY ${seeds} DESTINATION ${WORK}/corpus)
set(args -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
         -artifact_prefix=${WORK}/ ${EXTRA})
if(EXISTS ${DICT})
  list(APPEND args -dict=${DICT})
endif()
execute_process(COMMAND ${FUZZER} ${args} ${WORK}/corpus RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} exited with ${rc}: see the report above and the input in ${WORK}/")
endif()
