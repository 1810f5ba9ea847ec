#!/usr/bin/env bash
# The published results (docs/results.md): domain adaptation on PubMed with and without general
# replay, instruction tuning with the MCQ suite before/after, DPO after SFT, and projections to
# larger bases, all on SmolLM2-135M-Instruct with 2 threads.
#
#   bench/medical_results.sh [--smoke] [BUILD_DIR]
#
# Run from the repository root. BUILD_DIR (default build) holds the medtune binary. Every
# command's output goes to OUT (default .cache/results/medical; --smoke: .cache/results/
# medical/smoke), times.tsv records each command with its wall seconds, and the markdown table
# of all rows is printed on stdout and written to OUT/table.md. --smoke runs the same commands
# with 2-step trainings and tiny evaluation sizes (a check of the pipeline, not a result).
# Environment (defaults of the full run): MODEL (.cache/SmolLM2-135M-Instruct.Q4_1.gguf),
# THREADS (2), OUT, GENERAL_DIR (.cache/general: the fetched general-English corpus),
# DAPT_STEPS (60), DAPT_SECONDS (0: no time budget; N stops each run after N seconds),
# DAPT_LR (5e-4), SFT_STEPS (40), SFT_SECONDS (0), SFT_LR (2e-4), PPL_WINDOWS (32), SUITE_LIMIT (30 items
# per task), DPO (reuse | run: see row 3 below), PREF_RESULTS
# (.cache/results: bench/preference_job.sh's inputs and outputs), PYTHON (python3), ROWS
# ("1 2 3": the rows to run; "1" with another OUT and DAPT_LR tries another DAPT recipe),
# DAPT_RUNS ("dapt_noreplay dapt_replay": row 1's runs).
set -euo pipefail

SMOKE=0
if [ "${1:-}" = --smoke ]; then SMOKE=1; shift; fi
BUILD=${1:-build}
MODEL=${MODEL:-.cache/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-2}
GENERAL_DIR=${GENERAL_DIR:-.cache/general}
PREF_RESULTS=${PREF_RESULTS:-.cache/results}
PYTHON=${PYTHON:-python3}
DPO=${DPO:-reuse}
ROWS=${ROWS:-1 2 3}
DAPT_RUNS=${DAPT_RUNS:-dapt_noreplay dapt_replay}
want() { [[ " $ROWS " == *" $1 "* ]]; }
if [ $SMOKE = 1 ]; then
    OUT=${OUT:-.cache/results/medical/smoke}
    DAPT_STEPS=${DAPT_STEPS:-2}; SFT_STEPS=${SFT_STEPS:-2}
    DAPT_SECONDS=${DAPT_SECONDS:-300}; SFT_SECONDS=${SFT_SECONDS:-300}
    PPL_WINDOWS=${PPL_WINDOWS:-2}; SUITE_LIMIT=${SUITE_LIMIT:-2}
    # one window per micro-batch: the smoke run checks the pipeline, not the recipe
    SMOKE_ARGS=(--set batch.micro_batch=1)
else
    OUT=${OUT:-.cache/results/medical}
    # Fixed step counts, so that a run reproduces the published numbers bit for bit (training
    # is deterministic for a given thread count); a time budget would stop at a step that
    # depends on the machine's load.
    DAPT_STEPS=${DAPT_STEPS:-60}; SFT_STEPS=${SFT_STEPS:-40}
    DAPT_SECONDS=${DAPT_SECONDS:-0}; SFT_SECONDS=${SFT_SECONDS:-0}
    PPL_WINDOWS=${PPL_WINDOWS:-32}; SUITE_LIMIT=${SUITE_LIMIT:-30}
    SMOKE_ARGS=()
fi
DAPT_LR=${DAPT_LR:-5e-4}
SFT_LR=${SFT_LR:-2e-4}

die() { echo "medical_results: $*" >&2; exit 1; }
[ -x "$BUILD/medtune" ] || die "$BUILD/medtune: no medtune binary (build first)"
[ -e "$MODEL" ] || die "$MODEL: no model (tools/fetch_smollm2.sh fetches it)"
[ -d ../shared/data/pubmed_xml ] ||
    die "../shared/data: no PubMed data (run from the repository root)"
MEDTUNE=$(realpath "$BUILD/medtune")
MODEL=$(realpath "$MODEL")
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
TIMES=$OUT/times.tsv
printf 'row\tstage\tseconds\tload1\toutput\tcommand\n' > "$TIMES"
# The machine and the code the figures come from.
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
    echo "threads: $THREADS"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/machine.txt"
# medtune eval uses OpenMP's thread count; train takes `threads` from its config.
export OMP_NUM_THREADS=$THREADS

# stage ROW NAME CMD...: runs CMD with stdout to OUT/NAME.out and stderr to OUT/NAME.log, and
# appends its row, wall seconds, the 1-minute load average at its end and the command line
# (paths as given) to times.tsv.
stage() {
    local row=$1 name=$2 t0 rc=0
    shift 2
    echo "== $name: $*" >&2
    t0=$(date +%s.%N)
    "$@" > "$OUT/$name.out" 2> "$OUT/$name.log" || rc=$?
    printf '%s\t%s\t%.1f\t%s\t%s\t%s\n' "$row" "$name" "$(echo "$(date +%s.%N) - $t0" | bc)" \
        "$(cut -d' ' -f1 /proc/loadavg)" "$name.out" "$*" >> "$TIMES"
    [ $rc = 0 ] || { [ $rc = 124 ] && [ "${ALLOW_TIMEOUT:-0}" = 1 ]; } || {
        tail -5 "$OUT/$name.log" >&2
        die "$name failed (exit $rc): $OUT/$name.log"
    }
}

# The general-English corpus: the `fortunes` Debian package (quotations, jokes, anecdotes and
# literary excerpts in modern English; BSD-licensed, docs/results.md), fetched with apt-get
# download, never installed, into GENERAL_DIR. Each document is 8 consecutive entries of one
# file, a blank line between documents (prep's `text` format); the medicine file is left out so
# the corpus stays general. Without apt (a fresh machine with no package lists), the licence
# texts of configs/prep_general.json stand in, and general_source.txt says so.
fetch_general() {
    [ -s "$GENERAL_DIR/fortunes.txt" ] && return 0
    local tmp
    tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get download -q fortunes) > "$tmp/apt.log" 2>&1 &&
        dpkg-deb -x "$tmp"/fortunes_*.deb "$tmp/x"; then
        mkdir -p "$GENERAL_DIR"
        find "$tmp/x/usr/share/games/fortunes" -name '*.u8' ! -name 'ascii-art.u8' \
            ! -name 'medicine.u8' ! -name 'translate-me.u8' | sort |
            xargs awk 'FNR == 1 { if (n) print ""; n = 0 }
                       /^%$/ { if (++n % 8 == 0) print ""; next }
                       NF { print }' > "$GENERAL_DIR/fortunes.txt.tmp"
        cp "$tmp"/fortunes_*.deb "$GENERAL_DIR/"
        mv "$GENERAL_DIR/fortunes.txt.tmp" "$GENERAL_DIR/fortunes.txt"
    fi
    rm -rf "$tmp"
}
fetch_general
if [ -s "$GENERAL_DIR/fortunes.txt" ]; then
    GENERAL_INPUTS="[{\"path\": \"$(realpath "$GENERAL_DIR")/fortunes.txt\", \"format\": \"text\"}]"
    deb=$(ls "$GENERAL_DIR"/fortunes_*.deb 2>/dev/null | xargs -n1 basename)
    echo "fortunes (Debian package, $deb)" \
        > "$OUT/general_source.txt"
else
    GENERAL_INPUTS='[{"path": "/usr/share/common-licenses/*", "format": "text"}]'
    echo "FALLBACK: /usr/share/common-licenses (the fortunes package could not be fetched)" \
        > "$OUT/general_source.txt"
fi

# train_bounded ROW NAME SECONDS CONFIG ARGS...: medtune train; with SECONDS > 0 it is stopped by
# SIGTERM after SECONDS (it finishes the step and saves a checkpoint) so that a loaded machine
# cannot push the run past a budget (timeout 0 never fires); ADAPTER is set to the final adapter, or to the last checkpoint's when the
# budget ran out (OUT/NAME.partial then records it, and the table says so).
train_bounded() {
    local row=$1 name=$2 secs=$3 run_dir
    shift 3
    run_dir=$(sed -n 's/.*out_dir="\([^"]*\)".*/\1/p' <<< "$*")
    ALLOW_TIMEOUT=1 stage "$row" "$name" timeout -s TERM "$secs" "$MEDTUNE" train "$@"
    if [ -d "$run_dir/adapter" ]; then
        ADAPTER=$run_dir/adapter
        rm -f "$OUT/$name.partial"
    else
        ADAPTER=$run_dir/checkpoints/$(cat "$run_dir/checkpoints/latest")/adapter
        echo "$ADAPTER" > "$OUT/$name.partial"
    fi
}

# abstracts_to_text CSV TXT: the medical_abstract column, one text block per abstract.
abstracts_to_text() {
    "$PYTHON" -c 'import csv, sys
with open(sys.argv[1], newline="") as f, open(sys.argv[2], "w") as out:
    for r in csv.DictReader(f):
        out.write(" ".join(r["medical_abstract"].split()) + "\n\n")' "$1" "$2"
}

# ppl NAME SHARDS SEQ [ADAPTER]: perplexity of the val split, PPL_WINDOWS evenly spaced windows.
ppl() {
    local row=$1 name=$2 shards=$3 seq=$4 adapter=()
    [ -n "${5:-}" ] && adapter=(--adapter "$5")
    stage "$row" "$name" "$MEDTUNE" eval "$MODEL" "${adapter[@]}" --shards "$shards" \
        --seq-len "$seq" --max-windows "$PPL_WINDOWS" --batch 4 --json
}

# ---- Row 1: domain adaptation on PubMed ---------------------------------------------------
if want 1; then
    # The PubMed XML abstracts and PMC articles of configs/prep_pubmed.json, and the 2,888
    # abstracts of the Medical Abstracts corpus (a CSV, written out as one text block each).
    rm -rf "$OUT/shards/pubmed" "$OUT/shards/general"
    abstracts_to_text ../shared/data/medical_abstracts_tc/medical_tc_test.csv \
        "$OUT/medical_abstracts.txt"
    PUBMED_INPUTS="[{\"path\": \"../shared/data/pubmed_xml/*.xml\", \"format\": \"pubmed-xml\"},\
     {\"path\": \"../shared/data/pmc_oa_nxml/*.nxml\", \"format\": \"pmc-nxml\"},\
     {\"path\": \"$OUT/medical_abstracts.txt\", \"format\": \"text\"}]"
    stage 1 prep_pubmed "$MEDTUNE" prep configs/prep_pubmed.json --set "tokenizer=\"$MODEL\"" \
        --set "inputs=$PUBMED_INPUTS" --set "out_dir=\"$OUT/shards/pubmed\"" --json
    # The general corpus's val split (10%, by a hash of each document) is the held-out general
    # text; its train split is the replay stream, so no held-out document is ever replayed.
    stage 1 prep_general "$MEDTUNE" prep configs/prep_general.json --set "tokenizer=\"$MODEL\"" \
        --set "inputs=$GENERAL_INPUTS" --set val_fraction=0.1 \
        --set "out_dir=\"$OUT/shards/general\"" --json

    ppl 1 ppl_pubmed_base "$OUT/shards/pubmed" 256
    ppl 1 ppl_general_base "$OUT/shards/general" 256

    # Both runs: configs/pubmed_dapt.json (r 16, alpha 32, all 7 projections, 4 x 256 windows)
    # with one micro-batch per step, DAPT_STEPS steps at DAPT_LR; they differ only in replay.
    for run in $DAPT_RUNS; do
        if [ $run = dapt_replay ]; then ratio=0.1; else ratio=0; fi
        rm -rf "$OUT/$run"
        train_bounded 1 "train_$run" "$DAPT_SECONDS" configs/pubmed_dapt.json \
            --set "model=\"$MODEL\"" --set "data.train=\"$OUT/shards/pubmed\"" \
            --set "data.replay=\"$OUT/shards/general\"" \
            --set data.replay_ratio=$ratio --set steps=$DAPT_STEPS --set "optim.lr=$DAPT_LR" \
            --set batch.grad_accum=1 --set threads=$THREADS --set eval_every=0 \
            --set save_every=0 --set keep_last=1 "${SMOKE_ARGS[@]}" --set "out_dir=\"$OUT/$run\""
        ppl 1 "ppl_pubmed_$run" "$OUT/shards/pubmed" 256 "$ADAPTER"
        ppl 1 "ppl_general_$run" "$OUT/shards/general" 256 "$ADAPTER"
    done
fi

# ---- Row 2: instruction tuning on medAlpaca + ChatDoctor + MedInstruct --------------------
if want 2; then
    rm -rf "$OUT/shards/medchat"
    stage 2 prep_chat "$MEDTUNE" prep configs/prep_chat.json --set "tokenizer=\"$MODEL\"" \
        --set "out_dir=\"$OUT/shards/medchat\"" --json
    # The held-out answer loss: document attention (the shards are packed whole), 512 tokens.
    ppl 2 answer_loss_base "$OUT/shards/medchat" 512
    rm -rf "$OUT/sft"
    train_bounded 2 train_sft "$SFT_SECONDS" configs/meddialog_sft.json \
        --set "model=\"$MODEL\"" --set "data.train=\"$OUT/shards/medchat\"" \
        --set steps=$SFT_STEPS --set "optim.lr=$SFT_LR" \
        --set batch.grad_accum=1 --set threads=$THREADS --set eval_every=0 --set save_every=0 \
        --set keep_last=1 "${SMOKE_ARGS[@]}" --set "out_dir=\"$OUT/sft\""
    SFT_ADAPTER=$ADAPTER
    ppl 2 answer_loss_sft "$OUT/shards/medchat" 512 "$SFT_ADAPTER"
    # The leaderboard suite with every task cut to SUITE_LIMIT items, base and SFT adapter on
    # the same items (Wilson intervals, exact McNemar).
    sed -E "s/\"limit\": [0-9]+/\"limit\": $SUITE_LIMIT/" configs/medical_suite.json \
        > "$OUT/suite.json"
    rm -rf "$OUT/suite"
    stage 2 suite "$MEDTUNE" eval "$MODEL" --suite "$OUT/suite.json" --compare "$SFT_ADAPTER" \
        --out-dir "$OUT/suite"
fi

# ---- Row 3: DPO after SFT -----------------------------------------------------------------
# bench/preference_job.sh (40-step SFT, then one epoch of DPO on the English pairs of
# tools/self_negatives.py, 30 held-out pairs) takes about half an hour of DPO training alone.
# DPO=reuse (default) reports its last run from PREF_RESULTS/preference_job; DPO=run runs it
# again into OUT/dpo.
if ! want 3; then
    DPO=skip
    DPO_DIR=none
elif [ "$DPO" = run ]; then
    rm -rf "$OUT/dpo"
    stage 3 preference_job bench/preference_job.sh "$BUILD" "$PREF_RESULTS" "$OUT/dpo"
    DPO_DIR=$OUT/dpo
else
    DPO_DIR=$(realpath -m "$PREF_RESULTS/preference_job")
fi

# ---- Row 4 and the table ------------------------------------------------------------------
"$PYTHON" bench/medical_results_table.py "$OUT" "$DPO_DIR" "$DPO" | tee "$OUT/table.md.tmp"
mv "$OUT/table.md.tmp" "$OUT/table.md"
