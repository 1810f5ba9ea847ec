# medtune eval: benchmark readers against Python's json/csv, MCQ log-likelihoods and perplexity
# against the PyTorch twin, and the refusals of bad input.
medtune_add_test(NAME eval_readers
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/eval/check_readers.py LABELS eval)
foreach(check mcq_twin mcq_kv perplexity refusals)
  medtune_add_test(NAME eval_${check}
    COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/eval/check_${check}.py
    LABELS eval)
endforeach()
# A tokenizer.json without model.type (GPT-2's) is read by the one tokenizer reader in eval too.
medtune_add_test(NAME eval_tokenizer_json
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/eval/check_tokenizer_json.py LABELS eval)
# Ids outside the model's vocabulary (in a shard, or by the manifest's vocab_size) are refused
# by eval --shards and train, naming the file.
medtune_add_test(NAME eval_vocab_ids
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/eval/check_vocab_ids.py LABELS eval train)
# eval --shards scores packed chat documents with document attention: training's val loss.
medtune_add_test(NAME eval_doc_attention
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/eval/check_doc_attention.py LABELS eval)
# eval --suite: leaderboard table, results.json/.csv, --compare's paired exact McNemar test.
medtune_add_test(NAME eval_suite
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/eval/check_suite.py LABELS eval)
# The independent anchor: per-item log-likelihoods and accuracies equal lm-evaluation-harness's
# (its own task definitions over local items, in .cache/venv-oracle; skipped without it).
medtune_add_test(NAME eval_lm_eval
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/eval/check_lm_eval.py LABELS eval)
