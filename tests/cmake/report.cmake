# medtune report: the HTML page of a real (resumed, and in-progress) run checked against
# metrics.jsonl / config / manifest / checkpoints; hand-written edge cases and errors; and a
# headless-chromium screenshot (skipped when chromium is absent).
foreach(check run edges render)
  medtune_add_test(NAME report_${check}
    COMMAND ${MEDTUNE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/report/check_report_${check}.py
    LABELS report)
endforeach()
