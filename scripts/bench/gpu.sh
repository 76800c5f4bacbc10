#!/usr/bin/env bash
# Every GPU benchmark of docs/cost.md in one go (under 10 minutes on one H100), each written to OUT as
# a markdown table (and JSON where the script writes one):
#
#   bash scripts/bench/gpu.sh [OUT]            # default OUT: bench_gpu
#
#   cost.md         Table 1 measured: passes, step time, memory; RoBERTa-large fp16 (r3f_experiments.bench.cost)
#   seq2seq.md      summarization: standard vs reference vs ours label_smoothed_cross_entropy_r3f,
#                   BART-large fp16 (r3f_experiments.bench.seq2seq_step_time)
#   step_time.md    classification: standard vs reference vs ours, RoBERTa-large fp16 (r3f_experiments.bench.step_time)
#   noise_carried.md  share of sigma = 1e-5 that reaches the encoder per precision (r3f_experiments.bench.noise_carried)
# A benchmark that fails or runs out of its time is reported and the next one still runs.
# TINY=1 runs the same on tiny models on the CPU (a check of this script, not a benchmark).
set -euo pipefail

# ---- settings ------------------------------------------------------------------------------------
STEPS="${STEPS:-20}"                 # timed steps per config (after 5 warm-up steps)
CLS=(--arch roberta_large --fp16 --device cuda --batch-size 16 --seq-len 120)   # the setting of the reference's published cost figure (docs/cost.md)
S2S=(--arch bart_large --fp16 --device cuda --batch-size 8 --seq-len 512 --target-len 64)
NOISE=(--arch roberta_large)
# --------------------------------------------------------------------------------------------------
if [[ -n "${TINY:-}" ]]; then
    CLS=(--batch-size 4 --seq-len 16 --warmup 2); S2S=(--batch-size 4 --seq-len 16 --target-len 8 --warmup 2)
    NOISE=(--arch tiny --embedding-std 0.05); STEPS=2
fi
OUT="${1:-bench_gpu}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
status=0
bench() {  # NAME SECONDS MODULE ARGS...: one benchmark (r3f_experiments.bench.MODULE), at most SECONDS, into OUT/NAME.md (log: NAME.log)
    local name=$1 limit=$2 module=$3; shift 3
    echo "[gpu.sh] $name" >&2
    if timeout "$limit" "$PYTHON" -m "r3f_experiments.bench.${module}" "$@" > "${OUT}/${name}.md" 2> "${OUT}/${name}.log"; then
        cat "${OUT}/${name}.md"
    else
        echo "[gpu.sh] $name failed or timed out (exit $?); last lines of ${OUT}/${name}.log:" >&2
        tail -20 "${OUT}/${name}.log" >&2
        status=1
    fi
}
bench cost 270 cost "${CLS[@]}" --steps "$STEPS" --json-out "${OUT}/cost.json"
bench seq2seq 130 seq2seq_step_time "${S2S[@]}" --steps "$STEPS" --json-out "${OUT}/seq2seq.json"
bench step_time 110 step_time "${CLS[@]}" --only standard reference ours --steps "$STEPS" --json-out "${OUT}/step_time.json"
bench noise_carried 60 noise_carried "${NOISE[@]}"
exit $status
