#!/usr/bin/env bash
# Builds the llama.cpp that the PyPI package llama-cpp-python vendors, from its sdist, into
# .cache/llama.cpp/ (once). It is the reference medtune's merged GGUF files are checked against
# (tests label llama_cpp) and the generation baseline of bench/.
#
# Layout of the cache:
#   .cache/llama.cpp/src/          the unpacked sdist (python package llama_cpp/ + vendor/llama.cpp)
#   .cache/llama.cpp/build/bin/    llama-completion (the classic CLI), llama-bench, llama-quantize,
#                                  libllama.so, libggml*.so
#   .cache/llama.cpp/BUILD_INFO    version, compiler and cmake flags of the build
#   .cache/llama.cpp/OK            written last: its presence means the build is complete
# The python package is used straight from src/ (ctypes over build/bin/libllama.so through
# LLAMA_CPP_LIB_PATH), so llama.cpp is compiled once, not a second time by pip.
#
# Usage: tools/llama_cpp.sh [--print-dir]. Exit 0 with the cache dir on stdout when the build
# is there; exit 77 with the reason on stderr when it cannot be made (no network, no cmake).
# Environment: MEDTUNE_LLAMA_CPP_VERSION (default pinned below), MEDTUNE_LLAMA_CPP_NATIVE=OFF for
# a portable build (default ON: this cache is a local reference, never shipped), JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
version=${MEDTUNE_LLAMA_CPP_VERSION:-0.3.36}
native=${MEDTUNE_LLAMA_CPP_NATIVE:-ON}
jobs=${JOBS:-2}
dest=$PWD/.cache/llama.cpp
if [ -f "$dest/OK" ]; then
  echo "$dest"
  exit 0
fi
skip() { echo "llama_cpp.sh: cannot build llama.cpp: $*" >&2; exit 77; }
command -v cmake > /dev/null || skip "cmake not found"
command -v c++ > /dev/null || skip "no C++ compiler"
pip_cmd=".venv/bin/pip"
[ -x "$pip_cmd" ] || pip_cmd="/usr/bin/python3 -m pip"

mkdir -p "$dest/dl"
sdist=$(ls "$dest"/dl/llama_cpp_python-"$version".tar.gz 2> /dev/null || true)
if [ -z "$sdist" ]; then
  # Only llama-cpp-python itself is taken as a source distribution; the build backend pip runs
  # to read its metadata (scikit-build-core) may come as a wheel.
  $pip_cmd download -q --disable-pip-version-check --no-deps \
    --no-binary llama-cpp-python "llama-cpp-python==$version" -d "$dest/dl" >&2 ||
    ls "$dest"/dl/llama_cpp_python-"$version".tar.gz > /dev/null 2>&1 ||
    skip "pip download llama-cpp-python==$version failed"
  sdist=$(ls "$dest"/dl/llama_cpp_python-"$version".tar.gz)
fi
# Unpacked once per version: a rerun after a failed build keeps the sources (and their
# times), so make only redoes what is missing.
if ! grep -qx "Version: $version" "$dest/src/PKG-INFO" 2> /dev/null; then
  rm -rf "$dest/src.tmp" "$dest/build"
  mkdir -p "$dest/src.tmp"
  tar -xzf "$sdist" -C "$dest/src.tmp" --strip-components=1
  rm -rf "$dest/src"
  mv "$dest/src.tmp" "$dest/src"
fi

flags=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON "-DGGML_NATIVE=$native"
  -DGGML_OPENMP=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF)
cmake -S "$dest/src/vendor/llama.cpp" -B "$dest/build" "${flags[@]}" > "$dest/cmake.log" 2>&1 ||
  skip "cmake configure failed, see $dest/cmake.log"
cmake --build "$dest/build" -j "$jobs" --target llama llama-completion llama-bench llama-quantize \
  >> "$dest/cmake.log" 2>&1 || skip "cmake build failed, see $dest/cmake.log"
{
  echo "llama-cpp-python $version (sdist from PyPI), vendor/llama.cpp"
  echo "compiler: $(c++ --version | head -n 1)"
  echo "cmake flags: ${flags[*]}"
  echo "built: $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -m)"
} > "$dest/BUILD_INFO"
touch "$dest/OK"
echo "$dest"
