#!/usr/bin/env bash
# Every GPU benchmark of docs/cost.md (about 40 minutes on one H200; ONLY=NAME... runs some), each written to OUT as
# a markdown table (and JSON where the script writes one):
#
#   bash scripts/bench/gpu.sh [OUT]            # default OUT: bench_gpu
#
#   step_time_amp_16x120.md  classification step time and memory, standard vs reference vs ours (two passes,
#   step_time_amp_32x128.md  stacked, one-sided), RoBERTa-large --amp, REPEATS interleaved runs (bench.step_time)
#   seq2seq_amp.md           summarization: standard vs reference vs ours, BART-large --amp (bench.seq2seq_step_time)
#   step_time_fp16_16x120.md the same as the first under --fp16 (the precision of the earlier single-run figures)
#   train_cost_amp.md        whole fairseq-train runs: CPU time and updates/s per method, RoBERTa-large --amp
#                            (bench.train_cost; ratios within interleaved rounds)
#   cost.md                  Table 1 measured: passes, step time, memory of every method, --amp (bench.cost)
#   noise_carried.md         share of sigma = 1e-5 that reaches the encoder per precision (bench.noise_carried)
# In that order (the first ones matter most); a benchmark that fails or runs out of its time is reported
# and the next one still runs. Each has a time limit sized from earlier runs (a RoBERTa-large run of
# bench.step_time takes about 30 s, model building included); all together about 40 minutes. Where
# one command may only run for 10 minutes, run them in parts: ONLY="step_time_amp_16x120" bash ...
# TINY=1 runs the same on tiny models on the CPU (a check of this script, not a benchmark).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../recipe_common.sh"
handle_help "$0" "$@"

# ---- settings ------------------------------------------------------------------------------------
STEPS="${STEPS:-30}"                 # timed steps per run (after 5 warm-up steps)
REPEATS="${REPEATS:-3}"              # interleaved runs per config (median [min, max])
LARGE=(--arch roberta_large --device cuda)
S2S=(--arch bart_large --device cuda --batch-size 8 --seq-len 512 --target-len 64)
SHAPE_A=(--batch-size 16 --seq-len 120)   # the setting of the reference's published cost figure (docs/cost.md)
SHAPE_B=(--batch-size 32 --seq-len 128)
TRAIN=(--rounds 3 --short 20 --long 80)  # bench.train_cost: updates 21-80 measured
NOISE=(--arch roberta_large)
# --------------------------------------------------------------------------------------------------
if [[ -n "${TINY:-}" ]]; then
    LARGE=(--warmup 2); S2S=(--batch-size 4 --seq-len 16 --target-len 8 --warmup 2)
    SHAPE_A=(--batch-size 4 --seq-len 16); SHAPE_B=(--batch-size 8 --seq-len 16)
    TRAIN=(--rounds 1 --short 2 --long 4 --seq-len 16); NOISE=(--arch tiny --embedding-std 0.05); STEPS=2; REPEATS=1
fi
AMP=(--amp); FP16=(--fp16)
[[ -n "${TINY:-}" ]] && AMP=() && FP16=()  # the CPU runs fp32
OUT="${1:-bench_gpu}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
status=0
bench() {  # NAME SECONDS MODULE ARGS...: one benchmark (r3f_experiments.bench.MODULE), at most SECONDS, into OUT/NAME.md (log: NAME.log)
    local name=$1 limit=$2 module=$3; shift 3
    [[ -z "${ONLY:-}" || " ${ONLY} " == *" ${name} "* ]] || return 0
    echo "[gpu.sh] $name" >&2
    if timeout "$limit" "$PYTHON" -m "r3f_experiments.bench.${module}" "$@" > "${OUT}/${name}.md" 2> "${OUT}/${name}.log"; then
        cat "${OUT}/${name}.md"
    else
        echo "[gpu.sh] $name failed or timed out (exit $?); last lines of ${OUT}/${name}.log:" >&2
        tail -20 "${OUT}/${name}.log" >&2
        status=1
    fi
}
CLASSIFIERS=(--only standard reference ours ours-two ours-stacked ours-one-sided)
bench step_time_amp_16x120 560 step_time "${LARGE[@]}" "${AMP[@]}" "${SHAPE_A[@]}" "${CLASSIFIERS[@]}" \
    --steps "$STEPS" --repeats "$REPEATS" --json-out "${OUT}/step_time_amp_16x120.json"
bench step_time_amp_32x128 560 step_time "${LARGE[@]}" "${AMP[@]}" "${SHAPE_B[@]}" "${CLASSIFIERS[@]}" \
    --steps "$STEPS" --repeats "$REPEATS" --json-out "${OUT}/step_time_amp_32x128.json"
bench seq2seq_amp 300 seq2seq_step_time "${S2S[@]}" "${AMP[@]}" --steps "$STEPS" --repeats "$REPEATS" \
    --json-out "${OUT}/seq2seq_amp.json"
bench step_time_fp16_16x120 280 step_time "${LARGE[@]}" "${FP16[@]}" "${SHAPE_A[@]}" --only standard reference ours-two ours-stacked \
    --steps "$STEPS" --repeats 2 --json-out "${OUT}/step_time_fp16_16x120.json"
bench train_cost_amp 500 train_cost "${LARGE[@]}" "${AMP[@]}" "${SHAPE_A[@]}" "${TRAIN[@]}" --only standard reference ours ours-two \
    --json-out "${OUT}/train_cost_amp.json"
bench cost 330 cost "${LARGE[@]}" "${AMP[@]}" "${SHAPE_A[@]}" --steps "$STEPS" --json-out "${OUT}/cost.json"
bench noise_carried 60 noise_carried "${NOISE[@]}"
exit $status
