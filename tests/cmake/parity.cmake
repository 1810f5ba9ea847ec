# Parity tests (area twin): one ctest per tests/twin/cases/<case>.json. check_parity.py makes the
# model, runs the PyTorch twin into parity/<case>/debug.safetensors (cached) and then
# test_parity MODEL DEBUG, whose exit code it returns (77 = skipped).
file(GLOB MEDTUNE_PARITY_CASES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/twin/cases/*.json)
foreach(case_file ${MEDTUNE_PARITY_CASES})
  get_filename_component(case ${case_file} NAME_WE)
  medtune_add_test(NAME parity_${case}
    COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/twin/check_parity.py ${case}
    LABELS parity)
endforeach()

# The twin checked on its own: real-model reference logits, float64 gradcheck, a scalar
# reimplementation of the forward, GGUF Q/K permutation, packing equivalence.
medtune_add_test(NAME twin_selfcheck
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/twin/check_self.py
  LABELS twin parity)

# Attention alone against a float64 PyTorch reference: random per-row lower bounds (sliding
# windows inside documents), many short documents, a 2048-token row; 1 and 2 threads bit-equal.
medtune_add_test(NAME parity_attention
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/twin/check_attention.py
  LABELS parity)

# The same comparisons on the portable kernels (MEDTUNE_NO_AVX2=1: no AVX2 outside BLAS), for
# the cases that exercise every kernel: all seven targets, a 2048-token window, many documents.
foreach(case mha_basic seq2048 docs_many)
  medtune_add_test(NAME parity_${case}_portable
    COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/twin/check_parity.py ${case}
    LABELS parity)
  set_tests_properties(parity_${case}_portable PROPERTIES
    ENVIRONMENT "${MEDTUNE_TEST_ENV};MEDTUNE_NO_AVX2=1")
endforeach()
