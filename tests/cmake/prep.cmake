# prep area: ingest, cleaning, chat templates, shards (label "prep").
set(PREP_PY ${CMAKE_CURRENT_SOURCE_DIR}/prep)
foreach(kind pubmed pmc jsonl)
  foreach(tok gpt2 llama2)
    medtune_add_test(NAME prep_roundtrip_${kind}_${tok}
      COMMAND ${MEDTUNE_PYTHON} ${PREP_PY}/check_roundtrip.py ${kind} ${tok} LABELS prep)
  endforeach()
endforeach()
foreach(case chatml:qwen2.5 llama2:llama2 llama3:llama3 zephyr:llama2 alpaca:llama2 alpaca:gpt2
             auto-qwen:qwen2.5 gemma:gemma3 auto-gemma:gemma3 qwen3:qwen3 auto-qwen3:qwen3
             auto-gemma2:gemma3 phi3:phi-3-mini auto-phi3:phi-3-mini)
  string(REPLACE ":" ";" parts ${case})
  list(GET parts 0 tpl)
  list(GET parts 1 tok)
  medtune_add_test(NAME prep_chat_${tpl}_${tok}
    COMMAND ${MEDTUNE_PYTHON} ${PREP_PY}/check_chat.py ${tpl} ${tok} LABELS prep)
endforeach()
foreach(case determinism corrupt malformed phi)
  medtune_add_test(NAME prep_${case}
    COMMAND ${MEDTUNE_PYTHON} ${PREP_PY}/check_prep_cases.py ${case} LABELS prep)
endforeach()
medtune_add_test(NAME prep_chat_auto_smollm2_gguf
  COMMAND ${MEDTUNE_PYTHON} ${PREP_PY}/check_chat_gguf.py LABELS prep)
# Preference pairs: tokens and masks against TRL's DPO tokenization (jinja2 + HF tokenizers).
foreach(case pairs:chatml:qwen2.5 pairs:llama2:llama2 pairs:llama3:llama3 pairs:zephyr:llama2
             shared:chatml:qwen2.5 rows malformed)
  string(REPLACE ":" ";" args ${case})
  string(REPLACE ":" "_" name ${case})
  medtune_add_test(NAME prep_pref_${name}
    COMMAND ${MEDTUNE_PYTHON} ${PREP_PY}/check_preference.py ${args} LABELS prep)
endforeach()
# The English preference recipe (tools/self_negatives.py) on hand-written sources.
medtune_add_test(NAME prep_self_negatives
  COMMAND ${MEDTUNE_PYTHON} ${PREP_PY}/check_self_negatives.py LABELS prep)
