#!/usr/bin/env bash
# The README job "Preference tuning": DPO of SmolLM2-135M-Instruct from an SFT adapter on
# English preference pairs (tools/self_negatives.py), measured on held-out pairs.
#
#   bench/preference_job.sh [BUILD_DIR] [RESULTS_DIR] [OUT_DIR]
#
# BUILD_DIR (default build) holds the medtune binary. RESULTS_DIR (default .cache/results)
# holds the inputs: pairs_en/{train,val,recipe}.json[l] from tools/self_negatives.py and the
# SFT run sft/ (its adapter is DPO's initial policy and reference). OUT_DIR (default
# RESULTS_DIR/preference_job) receives the shards, the DPO run, the held-out evaluation
# (eval_heldout.json) and times.tsv (wall seconds of each stage). Run from the repo root.
# Environment: MODEL (default .cache/SmolLM2-135M-Instruct.Q4_1.gguf), THREADS (2), SEQ_LEN
# (256), LR (5e-5), TRAIN_SECONDS (0 = no limit; else the DPO run gets SIGTERM after that many
# seconds, saves a checkpoint, and the evaluation uses that checkpoint, labelled partial).
set -euo pipefail

BUILD=${1:-build}
RESULTS=${2:-.cache/results}
OUT=${3:-$RESULTS/preference_job}
MODEL=${MODEL:-.cache/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-2}
SEQ_LEN=${SEQ_LEN:-256}
LR=${LR:-5e-5}
TRAIN_SECONDS=${TRAIN_SECONDS:-0}
MEDTUNE=$BUILD/medtune

die() { echo "preference_job: $*" >&2; exit 1; }
[ -x "$MEDTUNE" ] || die "$MEDTUNE: no medtune binary (build first)"
[ -e "$MODEL" ] || die "$MODEL: no model (tools/bootstrap.sh fetches it)"
[ -f "$RESULTS/pairs_en/recipe.json" ] || die "$RESULTS/pairs_en: no recipe.json (the pairs are not complete)"
[ -f "$RESULTS/sft/adapter/adapter_config.json" ] || die "$RESULTS/sft/adapter: no SFT adapter"
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
MODEL=$(realpath "$MODEL")
PAIRS=$(realpath "$RESULTS/pairs_en")
SFT=$(realpath "$RESULTS/sft/adapter")
TIMES=$OUT/times.tsv
printf 'stage\tseconds\n' > "$TIMES"

# stage NAME CMD...: runs CMD, appends its wall seconds to times.tsv.
stage() {
    local name=$1 t0 rc=0
    shift
    echo "== $name: $*" >&2
    t0=$(date +%s.%N)
    "$@" || rc=$?
    printf '%s\t%.1f\n' "$name" "$(echo "$(date +%s.%N) - $t0" | bc)" >> "$TIMES"
    return $rc
}

# Two prep runs, val_fraction 0: the training pairs and the held-out pairs each all in the
# `train` split of their own directory, so no held-out pair can reach training.
prep_config() {
    cat > "$OUT/prep_$1.json" <<EOF
{"tokenizer": "$MODEL", "template": "auto", "val_fraction": 0,
 "inputs": [{"path": "$PAIRS/$1.jsonl", "format": "preference"}],
 "out_dir": "$OUT/shards_$1"}
EOF
}
prep_config train
prep_config val
rm -rf "$OUT/shards_train" "$OUT/shards_val"
stage prep_train "$MEDTUNE" prep "$OUT/prep_train.json"
stage prep_val "$MEDTUNE" prep "$OUT/prep_val.json"

# DPO from the SFT adapter: lora.* must equal the SFT run's (r 16, alpha 32, all projections).
# 1 epoch of 2 pairs x grad_accum 2 per step; beta 0.1, sigmoid (TRL's defaults).
cat > "$OUT/dpo.json" <<EOF
{"model": "$MODEL", "init_adapter": "$SFT",
 "data": {"train": "$OUT/shards_train"},
 "objective": "dpo", "dpo": {"beta": 0.1, "loss": "sigmoid"},
 "lora": {"r": 16, "alpha": 32, "dropout": 0.05,
          "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]},
 "optim": {"lr": $LR, "weight_decay": 0.0, "grad_clip": 1.0},
 "schedule": {"warmup_steps": 3, "decay": "linear"},
 "batch": {"micro_batch": 2, "seq_len": $SEQ_LEN, "grad_accum": 2},
 "epochs": 1, "shuffle": true, "seed": 42, "save_every": 5, "keep_last": 1,
 "threads": $THREADS, "out_dir": "$OUT/dpo"}
EOF
partial=0
if [ -f "$OUT/dpo/checkpoints/latest" ] && [ ! -d "$OUT/dpo/adapter" ]; then
    resume=(--resume)
elif [ -d "$OUT/dpo/adapter" ]; then
    die "$OUT/dpo: a finished run is there; remove it to train again"
else
    resume=()
fi
if [ "$TRAIN_SECONDS" -gt 0 ]; then
    stage train_dpo timeout -s TERM "$TRAIN_SECONDS" "$MEDTUNE" train "$OUT/dpo.json" \
        "${resume[@]}" || { rc=$?; [ $rc -eq 124 ] || exit $rc; partial=1; }
else
    stage train_dpo "$MEDTUNE" train "$OUT/dpo.json" "${resume[@]}"
fi
if [ $partial = 1 ]; then
    ckpt=$(cat "$OUT/dpo/checkpoints/latest")
    ADAPTER=$OUT/dpo/checkpoints/$ckpt/adapter
    echo "== PARTIAL: the DPO run was stopped after $TRAIN_SECONDS s; evaluating $ckpt" >&2
else
    ADAPTER=$OUT/dpo/adapter
fi

# Held-out pairs: the DPO adapter against the SFT reference. ref_logps/* and ref_nll/chosen
# are the SFT model's (before DPO), logps/* and nll/chosen the DPO model's (after); nll/chosen
# is the held-out answer loss: -(summed log-prob of the chosen answers) / their tokens.
stage eval_heldout "$MEDTUNE" eval "$MODEL" --adapter "$ADAPTER" --ref-adapter "$SFT" \
    --preference "$OUT/shards_val" --split train --seq-len "$SEQ_LEN" --batch 2 --beta 0.1 \
    --json > "$OUT/eval_heldout.json"
[ $partial = 0 ] || echo "{\"partial\": true, \"adapter\": \"$ADAPTER\"}" > "$OUT/PARTIAL"
echo "== adapter: $ADAPTER" >&2
cat "$OUT/eval_heldout.json"
cat "$TIMES"
