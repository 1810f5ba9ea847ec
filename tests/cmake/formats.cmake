# Area `formats`: ggml tensor types (formats/quant): dequantization bit for bit as gguf-py,
# quantizers against gguf-py's reference rounding and documented error bounds, bad blocks.
set(FORMATS_PY ${CMAKE_CURRENT_SOURCE_DIR}/formats)

medtune_add_test(NAME formats_quant COMMAND test_quant LABELS formats load)
foreach(case dequant quantize bad_input bad_model)
  medtune_add_test(NAME formats_quant_${case}
    COMMAND ${MEDTUNE_PYTHON} ${FORMATS_PY}/check_quant.py ${case} LABELS formats load python)
endforeach()
