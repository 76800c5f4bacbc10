#!/usr/bin/env bash
# Fine-tune RoBERTa on one GLUE task with one method, the paper's hyper-parameters.
#
#   bash scripts/glue/train.sh TASK METHOD [SEED] [SAVE_DIR] [-- EXTRA fairseq-train FLAGS]
#
#   TASK     MNLI QNLI QQP SST-2 RTE MRPC CoLA
#   METHOD   std     fairseq's sentence_prediction
#            std++   std trained twice as long (Zhang et al. 2020: longer fine-tuning; the Adam
#                    bias correction they restore is already in fairseq's Adam)
#            r3f     sentence_prediction_r3f
#            r4f     r3f + --spectral-norm-classification-head (1-Lipschitz head)
#   SEED     default 1;  SAVE_DIR default checkpoints/glue/TASK/METHOD/seedSEED
#
# Paths from the environment: GLUE_BIN (default glue_bin; TASK-bin inside, from
# scripts/glue/prepare.sh), ROBERTA (pre-trained model.pt, default roberta.large/model.pt;
# empty = no --restore-file), ARCH (default roberta_large), R3F_LAMBDA, NOISE_TYPE, PRECISION
# (default: --amp when a GPU is present). Flags after `--` come last and override the rest.
set -euo pipefail

# ---- hyper-parameters: paper Table 5 (per task) and Table 6 (shared) -----------------------
declare -A LR=(        [MNLI]=5e-6  [QNLI]=5e-6  [QQP]=5e-6   [SST-2]=5e-6  [RTE]=1e-5 [MRPC]=1e-5 [CoLA]=1e-5 )
declare -A MAX_UPDATE=([MNLI]=123873 [QNLI]=33112 [QQP]=113272 [SST-2]=20935 [RTE]=3120 [MRPC]=2296 [CoLA]=5336 )
declare -A BATCH=(     [MNLI]=8     [QNLI]=8     [QQP]=32     [SST-2]=32    [RTE]=8    [MRPC]=16   [CoLA]=16 )
declare -A NUM_CLASSES=([MNLI]=3    [QNLI]=2     [QQP]=2      [SST-2]=2     [RTE]=2    [MRPC]=2    [CoLA]=2 )
# metric reported in Table 2 and used to pick the best checkpoint
declare -A METRIC=(    [MNLI]=accuracy [QNLI]=accuracy [QQP]=acc_and_f1 [SST-2]=accuracy [RTE]=accuracy
                       [MRPC]=acc_and_f1 [CoLA]=mcc )
WARMUP_FRACTION=6      # % of max updates
ADAM_BETAS='(0.9,0.98)'
ADAM_EPS=1e-6
WEIGHT_DECAY=0.01
DROPOUT=0.1
R3F_LAMBDA="${R3F_LAMBDA:-1.0}"   # Table 6 grid: 0.1 0.5 1.0 5.0
NOISE_TYPE="${NOISE_TYPE:-uniform}"  # U or N
EPS=1e-5                          # sigma
STD_PLUS_PLUS_FACTOR=2            # std++: this many times the updates
# ----------------------------------------------------------------------------------------------

usage() { sed -n '2,20p' "$0" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
TASK=$1; METHOD=$2; shift 2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "${ROOT}/scripts/recipe_common.sh"
parse_run_args "$@"

[[ -n "${LR[$TASK]:-}" ]] || { echo "error: unknown TASK '$TASK' (MNLI QNLI QQP SST-2 RTE MRPC CoLA; STS-B is regression, which R3F does not cover)" >&2; exit 2; }
GLUE_BIN="${GLUE_BIN:-glue_bin}"
DATA="${GLUE_BIN}/${TASK}-bin"
SAVE_DIR="${SAVE_DIR:-checkpoints/glue/${TASK}/${METHOD}/seed${SEED}}"
ROBERTA="${ROBERTA-roberta.large/model.pt}"
ARCH="${ARCH:-roberta_large}"
resolve_precision

updates=${MAX_UPDATE[$TASK]}
case "$METHOD" in
    std)   CRITERION=(--criterion sentence_prediction) ;;
    std++) CRITERION=(--criterion sentence_prediction); updates=$(( updates * STD_PLUS_PLUS_FACTOR )) ;;
    r3f)   CRITERION=(--criterion sentence_prediction_r3f --r3f-lambda "$R3F_LAMBDA" --eps "$EPS" --noise-type "$NOISE_TYPE") ;;
    r4f)   CRITERION=(--criterion sentence_prediction_r3f --r3f-lambda "$R3F_LAMBDA" --eps "$EPS" --noise-type "$NOISE_TYPE"
                      --spectral-norm-classification-head) ;;
    *) echo "error: unknown METHOD '$METHOD' (std std++ r3f r4f)" >&2; exit 2 ;;
esac
warmup=$(( updates * WARMUP_FRACTION / 100 ))

REPORT=()
case "${METRIC[$TASK]}" in
    mcc) REPORT=(--report-mcc) ;;
    acc_and_f1) REPORT=(--report-acc-and-f1) ;;
esac
VALID=(--valid-subset valid)
[[ "$TASK" == MNLI ]] && VALID=(--valid-subset valid,valid1)  # matched, mismatched
RESTORE=()
[[ -n "$ROBERTA" ]] && RESTORE=(--restore-file "$ROBERTA" --reset-optimizer --reset-dataloader --reset-meters)

# DRY_RUN=1 prints the command (one line, shell-quoted) instead of running it, e.g. for a scheduler.
RUN=(exec)
[[ -n "${DRY_RUN:-}" ]] && RUN=(printf '%q ')
[[ -z "${DRY_RUN:-}" ]] && mkdir -p "$SAVE_DIR"
"${RUN[@]}" "$(fairseq_tool fairseq-train)" "$DATA" \
    --user-dir "${ROOT}/fairseq_r3f" "${RESTORE[@]}" \
    --task sentence_prediction --num-classes "${NUM_CLASSES[$TASK]}" --init-token 0 --separator-token 2 \
    --max-positions 512 --arch "$ARCH" --dropout "$DROPOUT" --attention-dropout "$DROPOUT" \
    "${CRITERION[@]}" "${REPORT[@]}" \
    --optimizer adam --adam-betas "$ADAM_BETAS" --adam-eps "$ADAM_EPS" --weight-decay "$WEIGHT_DECAY" \
    --clip-norm 0.0 --lr-scheduler polynomial_decay --lr "${LR[$TASK]}" \
    --warmup-updates "$warmup" --total-num-update "$updates" --max-update "$updates" \
    --batch-size "${BATCH[$TASK]}" --max-tokens 4400 --required-batch-size-multiple 1 \
    --seed "$SEED" --save-dir "$SAVE_DIR" --no-epoch-checkpoints "${VALID[@]}" \
    --best-checkpoint-metric "${METRIC[$TASK]}" --maximize-best-checkpoint-metric \
    --find-unused-parameters --log-format json --log-interval 100 $PRECISION "${EXTRA[@]}"
[[ -n "${DRY_RUN:-}" ]] && echo
