# Area `tok`: tokenizers identical to Hugging Face `tokenizers` (tokenizer/tok*.c, tokenizer.c).
set(TOK_PY ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer)

medtune_add_test(NAME tokenizer_unit
  COMMAND ${MEDTUNE_PYTHON} ${TOK_PY}/check_unit.py LABELS tokenizer python)
medtune_add_test(NAME tokenizer_cli COMMAND ${MEDTUNE_PYTHON} ${TOK_PY}/check_cli.py LABELS tokenizer python cli)
medtune_add_test(NAME tokenizer_llamacpp_vectors
  COMMAND ${MEDTUNE_PYTHON} ${TOK_PY}/check_vectors.py LABELS tokenizer python)
medtune_add_test(NAME tokenizer_adversarial
  COMMAND ${MEDTUNE_PYTHON} ${TOK_PY}/check_adversarial.py LABELS tokenizer python)
medtune_add_test(NAME tokenizer_invalid_utf8
  COMMAND ${MEDTUNE_PYTHON} ${TOK_PY}/check_adversarial.py invalid-utf8 LABELS tokenizer python)
# Every data file, line by line and whole, one test per tokenizer: a tokenizer of its family
# trained on the sample data always, the real one on ../shared/data when present.
foreach(tok gpt2 phi-2 phi-3-mini mistral-7b-v0.1 llama2 qwen2.5 llama3 tinystories-656k stories260K
            gemma3)
  medtune_add_test(NAME tokenizer_data_${tok}
    COMMAND ${MEDTUNE_PYTHON} ${TOK_PY}/check_parity_data.py ${tok} LABELS tokenizer python)
endforeach()
medtune_add_test(NAME tokenizer_gguf_smollm2
  COMMAND ${MEDTUNE_PYTHON} ${TOK_PY}/check_gguf.py smollm2 LABELS tokenizer python gguf)
medtune_add_test(NAME tokenizer_gguf_llama_spm
  COMMAND ${MEDTUNE_PYTHON} ${TOK_PY}/check_gguf.py llama-spm LABELS tokenizer python gguf)
# tokenizer_to_json: staged tokenizers and the SmolLM2 GGUF written back keep their fingerprint
# (test_tok_save_json) and give HF tokenizers 0.23 and 0.19 the reference ids.
medtune_add_test(NAME tokenizer_save_json
  COMMAND ${MEDTUNE_PYTHON} ${TOK_PY}/check_save_json.py LABELS tokenizer python)
# Gemma's real vocabularies (tools/fetch_tokenizer_files.sh): Gemma 3's GGUF (no merges) and
# Gemma 4's vocabulary GGUF with llama.cpp's HF vectors, against transformers' GemmaTokenizer.
foreach(which gemma3 gemma4)
  medtune_add_test(NAME tokenizer_gguf_${which}
    COMMAND ${MEDTUNE_PYTHON} ${TOK_PY}/check_gguf_gemma.py ${which} LABELS tokenizer python gguf)
endforeach()
