#!/usr/bin/env bash
# Makes the oracle venv, .cache/venv-oracle (or $MEDTUNE_ORACLE_VENV): the PyPI torch 2.15 wheel
# with the CUDA runtime packages it imports even on a CPU, transformers 5.24, peft 0.21.2,
# trl 1.16, lm_eval 0.4.13 and gguf, every package pinned in tests/requirements-oracle.txt
# (about 5 GB installed). The tests that compare medtune with transformers and PEFT
# themselves (tests/arch/, tests/eval/check_lm_eval.py) run in it and skip when it is absent.
# Safe to run again: nothing is installed when the venv already holds exactly these pins
# (a stamp records the hash of the requirements file it was made from).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${MEDTUNE_ORACLE_VENV:-${MEDTUNE_CACHE:-.cache}/venv-oracle}"
REQ=tests/requirements-oracle.txt
PYTHON="${PYTHON:-python3}"

req_hash=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$req_hash" ] &&
   "$VENV/bin/python" -c "import torch, transformers, peft, trl, lm_eval, gguf" 2>/dev/null; then
  echo "oracle_venv: $VENV is up to date"
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "oracle_venv: creating $VENV"
  mkdir -p "$(dirname "$VENV")"
  # No system site packages: Debian's torch 1.13 must not shadow the PyPI wheel.
  "$PYTHON" -m venv "$VENV"
fi
echo "oracle_venv: installing $REQ into $VENV (several GB the first time)"
"$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
"$VENV/bin/python" -c "import torch, transformers, peft, trl, lm_eval, gguf
print('oracle_venv: torch', torch.__version__, 'transformers', transformers.__version__,
      'peft', peft.__version__, 'trl', trl.__version__)"
echo "$req_hash" > "$VENV/.requirements.sha256"
