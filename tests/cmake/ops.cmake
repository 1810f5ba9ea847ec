# Area `ops`: every backward pass of model/ (rmsnorm, rope, swiglu, cross-entropy, attention,
# linear, LoRA with dropout) against central differences of a double-precision forward, and
# each gradient buffer's += / overwrite convention. No Python, no model files.
medtune_add_test(NAME ops_finite_difference COMMAND test_ops LABELS ops)
# The kernels outside BLAS (model/ops_vec.h), both versions against double references, and the
# dispatch; the second run forces the portable path (MEDTUNE_NO_AVX2=1).
medtune_add_test(NAME ops_vec COMMAND test_ops_vec LABELS ops)
medtune_add_test(NAME ops_vec_portable COMMAND test_ops_vec LABELS ops)
set_tests_properties(ops_vec_portable PROPERTIES ENVIRONMENT "${MEDTUNE_TEST_ENV};MEDTUNE_NO_AVX2=1")
