#!/usr/bin/env bash
# The three probing experiments (paper Sec. 4, Figures 3-5) end to end on SYNTHETIC tasks with a
# tiny RoBERTa on CPU: a check that the pipeline runs and a sample of its reports, not the paper's
# numbers (those need GLUE and RoBERTa-large; docs/probing.md).
#
#   bash scripts/probing_synthetic.sh [OUT]      # default OUT: ./probing_synthetic_out
#
# Four tasks over one vocabulary and dictionary (r3f_experiments/data/synthetic.py make_tasks), named as
# the GLUE tasks they stand in for: SST-2 = sentiment, QNLI = topic, QQP = length, RTE = first_cue.
# A tiny RoBERTa is pre-trained with fairseq's masked LM on the synthetic corpus first; then
# python -m r3f_experiments.probing drives scripts/glue/train.sh with the flags below (after `--`).
set -euo pipefail

# ---- hyper-parameters: scaled to a 2-layer, 64-dim model on 2 CPU cores -------------------------
# train.sh keeps the paper's Table 6 optimiser (Adam (0.9, 0.98), eps 1e-6, polynomial decay,
# dropout 0.1, weight decay 0.01) and R3F/R4F noise; LR, updates and batch size are overridden here.
FINETUNE_UPDATES="${FINETUNE_UPDATES:-150}"  # std++ trains twice as many, as in train.sh
PROBE_UPDATES="${PROBE_UPDATES:-150}"
FINETUNE_LR="${FINETUNE_LR:-3e-4}"
PROBE_LR="${PROBE_LR:-3e-3}"                  # a fresh linear layer on frozen features
BATCH_SIZE=16
PRETRAIN_UPDATES="${PRETRAIN_UPDATES:-300}"
SYNTHETIC_TRAIN=1000
SYNTHETIC_VALID=300
METHODS=(std++ r3f r4f)
CYCLIC_CHAIN=(SST-2 QNLI)                     # Figure 5's 4-task chain x 3 cycles costs 72 runs here
CYCLES=2
TINY_MODEL=(--arch roberta_base --encoder-layers 2 --encoder-embed-dim 64 --encoder-ffn-embed-dim 128
            --encoder-attention-heads 2 --max-positions 64)
# --------------------------------------------------------------------------------------------------

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "${ROOT}/scripts/recipe_common.sh"
handle_help "$0" "$@"
OUT="$(mkdir -p "${1:-probing_synthetic_out}" && cd "${1:-probing_synthetic_out}" && pwd)"
export GLUE_BIN="${OUT}/glue" PRECISION=""

[[ -d "$GLUE_BIN" ]] || echo "[probing_synthetic] synthetic tasks -> ${OUT}/data"
if [[ ! -d "$GLUE_BIN" ]]; then
    "$PYTHON" - "$OUT" "$SYNTHETIC_TRAIN" "$SYNTHETIC_VALID" <<'EOF'
import os, sys
from r3f_experiments.data.synthetic import make_tasks
out, n_train, n_valid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = {"SST-2": "sentiment", "QNLI": "topic", "QQP": "length", "RTE": "first_cue"}
made = make_tasks(os.path.join(out, "data"), list(names.values()), n_train, n_valid, seed=1)
os.makedirs(os.path.join(out, "glue.tmp"), exist_ok=True)
for name, rule in names.items():
    os.symlink(made[rule], os.path.join(out, "glue.tmp", f"{name}-bin"))
os.rename(os.path.join(out, "glue.tmp"), os.path.join(out, "glue"))
EOF
fi > "${OUT}/data.log" 2>&1
export ROBERTA="${OUT}/pretrain/checkpoint_last.pt"
if [[ ! -f "$ROBERTA" ]]; then
    echo "[probing_synthetic] masked-LM pre-training of the tiny RoBERTa (${PRETRAIN_UPDATES} updates)"
    "$(fairseq_tool fairseq-train)" "${GLUE_BIN}/SST-2-bin/pretrain" --task masked_lm --criterion masked_lm \
        "${TINY_MODEL[@]/--max-positions/--tokens-per-sample}" --batch-size 32 --optimizer adam \
        --adam-betas '(0.9,0.98)' --lr 1e-3 --lr-scheduler polynomial_decay --warmup-updates 30 \
        --total-num-update "$PRETRAIN_UPDATES" --max-update "$PRETRAIN_UPDATES" --cpu --num-workers 0 --seed 1 \
        --no-epoch-checkpoints --disable-validation --save-dir "${OUT}/pretrain" --log-format json \
        > "${OUT}/pretrain.log" 2>&1
fi

COMMON=("${TINY_MODEL[@]}" --cpu --num-workers 0 --batch-size "$BATCH_SIZE" --log-interval 50)
schedule() { echo "--max-update $1 --total-num-update $1 --warmup-updates $(( $1 * 6 / 100 )) --lr $2"; }
PROBE_FLAGS="$(schedule "$PROBE_UPDATES" "$PROBE_LR")"
for method in "${METHODS[@]}"; do
    updates=$FINETUNE_UPDATES
    [[ "$method" == "std++" ]] && updates=$(( 2 * FINETUNE_UPDATES ))
    FLAGS=(--methods "$method" --out-dir "${OUT}/runs" --finetune-flags "$(schedule "$updates" "$FINETUNE_LR")"
           --probe-flags "$PROBE_FLAGS")
    "$PYTHON" -m r3f_experiments.probing cross-task "${FLAGS[@]}" --probe-tasks QNLI QQP RTE -- "${COMMON[@]}"
    "$PYTHON" -m r3f_experiments.probing sequential "${FLAGS[@]}" --chain SST-2 QNLI QQP RTE -- "${COMMON[@]}"
    "$PYTHON" -m r3f_experiments.probing cyclic "${FLAGS[@]}" --chain "${CYCLIC_CHAIN[@]}" --cycles "$CYCLES" \
        -- "${COMMON[@]}"
done
"$PYTHON" -m r3f_experiments.probing report --out-dir "${OUT}/runs"
