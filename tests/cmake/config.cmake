# Area `config`: the train and prep config keys are defined once, in the tables of
# train/train_config.c and data_prep/prep_config.c. docs/config.md and docs/prep.md must list
# exactly those keys with the same defaults and meanings, and every printed default must be
# the value the parser uses (tests/test_train_config.c).
medtune_add_test(NAME config_doc_train
  COMMAND test_train_config doc-train ${CMAKE_SOURCE_DIR}/docs/config.md LABELS config)
medtune_add_test(NAME config_doc_prep
  COMMAND test_train_config doc-prep ${CMAKE_SOURCE_DIR}/docs/prep.md LABELS config)
medtune_add_test(NAME config_defaults COMMAND test_train_config defaults LABELS config)
# Every command's argv parsing and --help through tools/options.c: the listing, generated help,
# usage errors, --opt=value, --, and `train --help` / `prep --help` listing the documented keys.
medtune_add_test(NAME config_cli_options
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/config/check_cli_options.py
  LABELS config cli python)
# The tests' Python is chosen when a test runs (a .venv made after configuring is used), and a
# driver needing a module that Python lacks is skipped with the reason (tests/site/).
medtune_add_test(NAME config_python_choice
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/config/check_python_choice.py
  LABELS config python)
