"""Loaded by every Python a test starts (ctest puts tests/site on PYTHONPATH). A test driver
that needs a third-party module this Python lacks (torch, numpy, tokenizers, gguf...) is
skipped with that reason instead of failing with a traceback: the Python is the machine's
state, not a medtune bug. A missing module of the tests themselves is still a failure."""
import os
import sys

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _is_test_module(name):
    top = name.split(".")[0]
    return any(os.path.exists(os.path.join(d, top + ".py")) or os.path.isdir(os.path.join(d, top))
               for d, _, _ in os.walk(_TESTS))


def _skip_missing_module(kind, value, tb):
    if issubclass(kind, ModuleNotFoundError) and value.name and not _is_test_module(value.name):
        print(f"SKIP: Python module '{value.name.split('.')[0]}' is missing from {sys.executable} "
              f"(tools/bootstrap.sh makes .venv with every test module; or configure with "
              f"-DMEDTUNE_PYTHON=<a python that has it>)", flush=True)
        sys.stderr.flush()
        os._exit(77)
    sys.__excepthook__(kind, value, tb)


sys.excepthook = _skip_missing_module
