# Area `weight`: frozen bases kept in their stored type (model/weight.h) and the products on them.
set(WEIGHT_PY ${CMAKE_CURRENT_SOURCE_DIR}/weight)

# Loss and LoRA gradients (dequantized panels + sgemm) on a random llama GGUF in each stored
# type equal the fp32 path's on the weights gguf-py dequantizes (test_weight_exact, 1e-6
# relative); greedy tokens equal, logits after the prompt within 1e-5 (fp32 kernels) or 5e-2
# (int8 activations; measured 2e-4 to 1.5e-2).
foreach(case q8_0 q4_0 q4_1 q5_k q4_k q6_k q2_k q3_k q4_k_m bf16 f16)
  medtune_add_test(NAME weight_exact_${case}
    COMMAND ${MEDTUNE_PYTHON} ${WEIGHT_PY}/check_exact.py ${case} LABELS weight python)
endforeach()
# The same on the portable kernels (fp32 activations in the decoder: logits within 1e-5).
medtune_add_test(NAME weight_exact_q4_k_m_no_avx2
  COMMAND ${MEDTUNE_PYTHON} ${WEIGHT_PY}/check_exact.py q4_k_m_no_avx2 LABELS weight python)
# base_dtype bf16 / q8_0: a Hugging Face F32 base converted at load equals the fp32 path on
# gguf-py's quantize + dequantize of its matrices (and says so in the log); a GGUF refuses it.
foreach(case hf_bf16 hf_q8_0 gguf_base_dtype)
  medtune_add_test(NAME weight_base_dtype_${case}
    COMMAND ${MEDTUNE_PYTHON} ${WEIGHT_PY}/check_exact.py ${case} LABELS weight python)
endforeach()
# The decoder's few-row products (weight_gemv) on every stored type against float64: the
# integer kernels (int8 activations) within fp32 rounding of the product on the documented
# quantized activations and within the documented bound of the exact one; the fp32 kernels
# (and every type with MEDTUNE_NO_AVX2=1, the portable fallback) within fp32 rounding.
medtune_add_test(NAME weight_gemv COMMAND test_weight_gemv LABELS weight)
medtune_add_test(NAME weight_gemv_no_avx2 COMMAND test_weight_gemv LABELS weight)
set_property(TEST weight_gemv_no_avx2 APPEND PROPERTY ENVIRONMENT MEDTUNE_NO_AVX2=1)
# The decoder's grouped products (q/k/v, gate/up in one parallel region, the input rounded
# once; model/weight_group.h) equal the separate products bit for bit, in mixed types, on 1, 2
# and 3 threads, on the AVX2 kernels and on the portable ones.
medtune_add_test(NAME weight_group COMMAND test_weight_gemv group LABELS weight)
medtune_add_test(NAME weight_group_no_avx2 COMMAND test_weight_gemv group LABELS weight)
set_property(TEST weight_group_no_avx2 APPEND PROPERTY ENVIRONMENT MEDTUNE_NO_AVX2=1)
