# Area `ops`: every backward pass of model/ (rmsnorm, rope, swiglu, cross-entropy, attention,
# linear, LoRA with dropout) against central differences of a double-precision forward, and
# each gradient buffer's += / overwrite convention. No Python, no model files.
medtune_add_test(NAME ops_finite_difference COMMAND test_ops LABELS ops)
