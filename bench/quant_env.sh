# Sourced by bench/quant_generate.sh and bench/quant_train.sh from the checkout's root: the
# build directory ($MEDTUNE_BUILD, default build), the folder of the generated model files
# ($QUANT_BENCH_DIR, default .cache/bench-quant, created), the Python with numpy and gguf (the
# checkout's .venv, else python3) and passive OpenMP waiting unless the caller chose otherwise.
build=${MEDTUNE_BUILD:-build}
dir=${QUANT_BENCH_DIR:-.cache/bench-quant}
py=.venv/bin/python
[ -x "$py" ] || py=python3
mkdir -p "$dir"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
