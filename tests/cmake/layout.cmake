# Source layout: one-way includes between folders (no cycle, none against the layering), no C
# file over 800 lines, no private copy of a shared helper (clock, suffix test, GGUF magic).
medtune_add_test(NAME layout
  COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/layout/check_layout.py
  LABELS layout)
