# Area `load`: weight file formats (safetensors, GGUF), model loading, `medtune info`.
set(LOAD_PY ${CMAKE_CURRENT_SOURCE_DIR}/load)

medtune_add_test(NAME load_halfconv COMMAND test_halfconv LABELS load)
medtune_add_test(NAME load_safetensors COMMAND test_safetensors LABELS load)
medtune_add_test(NAME load_gguf COMMAND test_gguf LABELS load)
medtune_add_test(NAME load_safetensors_writer_vs_pip
  COMMAND ${MEDTUNE_PYTHON} ${LOAD_PY}/check_st_writer.py LABELS load python)
medtune_add_test(NAME load_cli_bad_inputs
  COMMAND ${MEDTUNE_PYTHON} ${LOAD_PY}/check_bad_inputs.py LABELS load python cli)
medtune_add_test(NAME load_cli_info
  COMMAND ${MEDTUNE_PYTHON} ${LOAD_PY}/check_info.py LABELS load python cli)

# model_load() against references from the safetensors / gguf Python packages.
foreach(case hf_stories260K hf_tinystories hf_f16 hf_bf16 hf_sharded hf_untied hf_qwen2
        hf_mistral hf_llama3_rope hf_rope_parameters gguf_f32 gguf_f16 gguf_bf16 gguf_q8_0
        gguf_q4_0 gguf_q4_1 gguf_stories260K_f32 gguf_stories260K_q8_0 gguf_qwen2_q8_0 smollm2)
  medtune_add_test(NAME load_ref_${case}
    COMMAND ${MEDTUNE_PYTHON} ${LOAD_PY}/check_model_load.py ${case} LABELS load python)
endforeach()
