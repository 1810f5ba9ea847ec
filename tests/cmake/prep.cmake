# prep area: ingest, cleaning, chat templates, shards (label "prep").
set(PREP_PY ${CMAKE_CURRENT_SOURCE_DIR}/prep)
foreach(kind pubmed pmc jsonl)
  foreach(tok gpt2 llama2)
    medtune_add_test(NAME prep_roundtrip_${kind}_${tok}
      COMMAND ${MEDTUNE_PYTHON} ${PREP_PY}/test_roundtrip.py ${kind} ${tok} LABELS prep)
  endforeach()
endforeach()
