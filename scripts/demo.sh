#!/usr/bin/env bash
# Fine-tune with standard fine-tuning, R3F and R4F through `fairseq-train --user-dir`,
# then print one table: method, dev accuracy, train time, symm_kl.
#
#   bash scripts/demo.sh                          # built-in synthetic task, tiny RoBERTa (CPU, ~5 min)
#   bash scripts/demo.sh DATA_BIN CHECKPOINT [OUT] # your GLUE-format data-bin (input0/, label/) and a
#                                                  # fairseq RoBERTa/XLM-R checkpoint, e.g. roberta.large/model.pt
# Output goes to OUT (default: $DEMO_OUT, else ./demo_out in the repository).
#
# With no arguments the task is SYNTHETIC (fairseq_r3f/synthetic.py: made-up words, label =
# more positive than negative cue words) and the model is a 2-layer, 64-dim RoBERTa that this
# script first pre-trains with fairseq's masked LM on the synthetic corpus, so that each method
# fine-tunes the same pre-trained checkpoint via --restore-file, as the paper's recipes do.
set -euo pipefail

# ---- hyper-parameters --------------------------------------------------------------------
# Optimiser and schedule follow the paper's Table 6 (Adam betas (0.9, 0.98), eps 1e-6,
# polynomial decay, 6% warm-up, dropout 0.1, weight decay 0.01); R3F/R4F use its noise
# (uniform, sigma 1e-5) and lambda from its grid [0.1, 0.5, 1.0, 5.0]. LR, updates and batch
# size are scaled to a tiny model on 2 CPU cores (the paper's RTE: LR 1e-5, 3120 updates, batch 8).
LR="${LR:-1e-4}"
MAX_UPDATE="${MAX_UPDATE:-250}"
BATCH_SIZE="${BATCH_SIZE:-16}"
WARMUP_UPDATES=$(( MAX_UPDATE * 6 / 100 ))
DROPOUT=0.1
WEIGHT_DECAY=0.01
R3F_LAMBDA="${R3F_LAMBDA:-1.0}"
EPS=1e-5
NOISE_TYPE=uniform
SEED="${SEED:-1}"
# the built-in default only: synthetic data size and masked-LM pre-training of the tiny model
SYNTHETIC_TRAIN="${SYNTHETIC_TRAIN:-600}"
SYNTHETIC_VALID="${SYNTHETIC_VALID:-400}"
PRETRAIN_UPDATES="${PRETRAIN_UPDATES:-400}"
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

if [[ -z "$DATA_BIN" ]]; then
    echo "[demo] built-in SYNTHETIC task -> ${OUT}/data"
    rm -rf "${OUT}/data" "${OUT}/pretrain"
    "$PYTHON" -m fairseq_r3f.synthetic "${OUT}/data" --train "$SYNTHETIC_TRAIN" --valid "$SYNTHETIC_VALID" \
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
    DEVICE=(--cpu)
else
    for sub in input0 label; do
        [[ -f "${DATA_BIN}/${sub}/dict.txt" ]] || { echo "error: ${DATA_BIN}/${sub}/dict.txt missing: DATA_BIN must be a sentence_prediction data-bin (input0/, label/)" >&2; exit 2; }
    done
    [[ -f "$CHECKPOINT" ]] || { echo "error: checkpoint ${CHECKPOINT} not found" >&2; exit 2; }
    # the model the checkpoint holds (architecture and sizes), as fairseq-train flags
    model_flags="$("$PYTHON" -m fairseq_r3f.checkpoint_model_flags "$CHECKPOINT" 2>"${OUT}/model_flags.err")" \
        || { echo "error: cannot read the model configuration of ${CHECKPOINT}:" >&2; tail -1 "${OUT}/model_flags.err" >&2; exit 2; }
    read -r -a MODEL <<< "$model_flags"
    DEVICE=()
    "$PYTHON" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' || DEVICE=(--cpu)
fi
NUM_CLASSES="$(grep -cv '^madeupword' "${DATA_BIN}/label/dict.txt")"

run() {  # run METHOD CRITERION-FLAGS...
    local method=$1; shift
    echo "[demo] fine-tuning: ${method}"
    rm -rf "${OUT}/${method}"
    "${BIN}/fairseq-train" "$DATA_BIN" --user-dir "$USER_DIR" --restore-file "$CHECKPOINT" \
        --reset-optimizer --reset-dataloader --reset-meters \
        --task sentence_prediction --num-classes "$NUM_CLASSES" --init-token 0 --separator-token 2 \
        "${MODEL[@]}" "${DEVICE[@]}" "$@" \
        --dropout "$DROPOUT" --attention-dropout "$DROPOUT" --weight-decay "$WEIGHT_DECAY" \
        --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-6 --clip-norm 0.0 \
        --lr-scheduler polynomial_decay --lr "$LR" --warmup-updates "$WARMUP_UPDATES" \
        --total-num-update "$MAX_UPDATE" --max-update "$MAX_UPDATE" --batch-size "$BATCH_SIZE" \
        --required-batch-size-multiple 1 --seed "$SEED" --num-workers 0 \
        --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric --no-epoch-checkpoints \
        --no-save --log-format json --log-interval 50 > "${OUT}/${method}.log" 2>&1 \
        || { echo "error: ${method} failed; last lines of ${OUT}/${method}.log:" >&2; tail -20 "${OUT}/${method}.log" >&2; exit 1; }
}

R3F=(--criterion sentence_prediction_r3f --r3f-lambda "$R3F_LAMBDA" --eps "$EPS" --noise-type "$NOISE_TYPE")
run std --criterion sentence_prediction
run r3f "${R3F[@]}"
run r4f "${R3F[@]}" --spectral-norm-classification-head

"$PYTHON" -m fairseq_r3f.demo_table "$OUT" std r3f r4f
