# Area `weight`: frozen bases kept in their stored type (model/weight.h) and the products on them.
set(WEIGHT_PY ${CMAKE_CURRENT_SOURCE_DIR}/weight)

# Loss, LoRA gradients (many rows: dequantized panels; few rows: block kernels) and greedy
# tokens on a random llama GGUF in each stored type equal the fp32 path's on the weights
# gguf-py dequantizes (test_weight_exact, 1e-6 relative).
foreach(case q8_0 q4_0 q4_1 q5_k q4_k q6_k q4_k_m bf16 f16)
  medtune_add_test(NAME weight_exact_${case}
    COMMAND ${MEDTUNE_PYTHON} ${WEIGHT_PY}/check_exact.py ${case} LABELS weight python)
endforeach()
# base_dtype bf16 / q8_0: a Hugging Face F32 base converted at load equals the fp32 path on
# gguf-py's quantize + dequantize of its matrices (and says so in the log); a GGUF refuses it.
foreach(case hf_bf16 hf_q8_0 gguf_base_dtype)
  medtune_add_test(NAME weight_base_dtype_${case}
    COMMAND ${MEDTUNE_PYTHON} ${WEIGHT_PY}/check_exact.py ${case} LABELS weight python)
endforeach()
