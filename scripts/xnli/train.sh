#!/usr/bin/env bash
# Fine-tune XLM-R on English MultiNLI for zero-shot XNLI, the paper's Table 9 hyper-parameters.
#
#   bash scripts/xnli/train.sh METHOD [SEED] [SAVE_DIR] [-- EXTRA fairseq-train FLAGS]
#
#   METHOD   std | r3f | r4f   (as in scripts/glue/train.sh)
# Paths from the environment: XNLI_BIN (default xnli_bin, from scripts/xnli/prepare.sh),
# XLMR (pre-trained model.pt, default xlmr.large/model.pt; empty = no --restore-file),
# ARCH (default roberta_large: XLM-R large is a RoBERTa-large encoder), R3F_LAMBDA, NOISE_TYPE,
# PRECISION (default: --amp when a GPU is present). Flags after `--` come last.
set -euo pipefail

# ---- hyper-parameters: paper Table 9 --------------------------------------------------------
LR=3e-5
MAX_UPDATE=450000
WARMUP_FRACTION=6          # not in Table 9; the GLUE value (Table 6)
MAX_TOKENS=4400
MAX_SENTENCES=8
MAX_POSITIONS=512
ADAM_BETAS='(0.9,0.98)'
ADAM_EPS=1e-8
WEIGHT_DECAY=0.01
DROPOUT=0.1
R3F_LAMBDA="${R3F_LAMBDA:-1.0}"     # Table 9 grid: 0.5 1 3 5
NOISE_TYPE="${NOISE_TYPE:-uniform}"  # U or N
EPS=1e-5                            # sigma
# ----------------------------------------------------------------------------------------------

[[ $# -ge 1 ]] || { sed -n '2,11p' "$0" >&2; exit 2; }
METHOD=$1; shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "${ROOT}/scripts/recipe_common.sh"
parse_run_args "$@"
XNLI_BIN="${XNLI_BIN:-xnli_bin}"
SAVE_DIR="${SAVE_DIR:-checkpoints/xnli/${METHOD}/seed${SEED}}"
XLMR="${XLMR-xlmr.large/model.pt}"
ARCH="${ARCH:-roberta_large}"
resolve_precision
R3F=(--criterion sentence_prediction_r3f --r3f-lambda "$R3F_LAMBDA" --eps "$EPS" --noise-type "$NOISE_TYPE")
case "$METHOD" in
    std) CRITERION=(--criterion sentence_prediction) ;;
    r3f) CRITERION=("${R3F[@]}") ;;
    r4f) CRITERION=("${R3F[@]}" --spectral-norm-classification-head) ;;
    *) echo "error: unknown METHOD '$METHOD' (std r3f r4f)" >&2; exit 2 ;;
esac
RESTORE=()
[[ -n "$XLMR" ]] && RESTORE=(--restore-file "$XLMR" --reset-optimizer --reset-dataloader --reset-meters)

mkdir -p "$SAVE_DIR"
# model selection on the English dev set (zero-shot: no target-language data is used)
exec "$(fairseq_tool fairseq-train)" "$XNLI_BIN" \
    --user-dir "${ROOT}/fairseq_r3f" "${RESTORE[@]}" \
    --task sentence_prediction --num-classes 3 --init-token 0 --separator-token 2 \
    --max-positions "$MAX_POSITIONS" --arch "$ARCH" --dropout "$DROPOUT" --attention-dropout "$DROPOUT" \
    "${CRITERION[@]}" \
    --optimizer adam --adam-betas "$ADAM_BETAS" --adam-eps "$ADAM_EPS" --weight-decay "$WEIGHT_DECAY" \
    --clip-norm 0.0 --lr-scheduler polynomial_decay --lr "$LR" \
    --warmup-updates $(( MAX_UPDATE * WARMUP_FRACTION / 100 )) --total-num-update "$MAX_UPDATE" \
    --max-update "$MAX_UPDATE" --max-tokens "$MAX_TOKENS" --batch-size "$MAX_SENTENCES" \
    --required-batch-size-multiple 1 --seed "$SEED" --save-dir "$SAVE_DIR" --no-epoch-checkpoints \
    --valid-subset valid --best-checkpoint-metric accuracy --maximize-best-checkpoint-metric \
    --find-unused-parameters --log-format json --log-interval 100 $PRECISION "${EXTRA[@]}"
