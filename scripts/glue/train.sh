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
#            smart   sentence_prediction_smart (SMART, MT-DNN's published defaults)
#            freelb  --task sentence_prediction_adv (FreeLB, its authors' per-task RoBERTa-large settings)
#   SEED     default 1;  SAVE_DIR default checkpoints/glue/TASK/METHOD/seedSEED
#
# Paths from the environment: GLUE_BIN (default glue_bin; TASK-bin inside, from
# scripts/glue/prepare.sh), ROBERTA (pre-trained model.pt, default roberta.large/model.pt;
# empty = no --restore-file), ARCH (default roberta_large), R3F_LAMBDA, NOISE_TYPE, SMART_LAMBDA, PRECISION
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
# SMART (Jiang et al. 2020), the defaults of its authors' code (MT-DNN: adv_alpha, adv_k,
# adv_step_size, adv_noise_var, adv_p_norm); the same for every task.
SMART_LAMBDA="${SMART_LAMBDA:-1.0}"  # lambda_s
SMART_STEPS=1                     # K
SMART_STEP_SIZE=1e-3              # eta
SMART_NOISE_STD=1e-5              # sigma
SMART_NORM_TYPE=linf
# FreeLB (Zhu et al. 2020): the authors' RoBERTa-large runs, launch/FreeLB/<task>-fp32-clip.sh in
# github.com/zhuchen03/FreeLB (fairseq-RoBERTa), ADV_LR ADV_STEP INIT_MAG MNORM of the lines
# left active there; RTE's active lines are its baseline (all 0), so RTE takes its commented
# FreeLB line. Their optimisation settings (Adam beta2 0.999, weight decay 0.1, ...) are not
# used: every method here shares the paper's Tables 5-6.
declare -A ADV_LR=(      [MNLI]=1e-1 [QNLI]=7.5e-2 [QQP]=2e-1   [SST-2]=1e-1 [RTE]=6e-2   [MRPC]=4e-2   [CoLA]=2.5e-2 )
declare -A ADV_STEPS=(   [MNLI]=2    [QNLI]=2      [QQP]=2      [SST-2]=2    [RTE]=3      [MRPC]=3      [CoLA]=3 )
declare -A ADV_INIT_MAG=([MNLI]=1e-1 [QNLI]=1.5e-1 [QQP]=3.2e-1 [SST-2]=1    [RTE]=1.6e-1 [MRPC]=6.4e-1 [CoLA]=4e-1 )
declare -A ADV_MAX_NORM=([MNLI]=3e-1 [QNLI]=1.5e-1 [QQP]=7e-1   [SST-2]=6e-1 [RTE]=1.4e-1 [MRPC]=4e-1   [CoLA]=3e-1 )
ADV_NORM_TYPE=l2
# ----------------------------------------------------------------------------------------------

usage() { sed -n '2,22p' "$0" >&2; exit 2; }
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
TASK_NAME=sentence_prediction
case "$METHOD" in
    std)   CRITERION=(--criterion sentence_prediction) ;;
    std++) CRITERION=(--criterion sentence_prediction); updates=$(( updates * STD_PLUS_PLUS_FACTOR )) ;;
    r3f)   CRITERION=(--criterion sentence_prediction_r3f --r3f-lambda "$R3F_LAMBDA" --eps "$EPS" --noise-type "$NOISE_TYPE") ;;
    r4f)   CRITERION=(--criterion sentence_prediction_r3f --r3f-lambda "$R3F_LAMBDA" --eps "$EPS" --noise-type "$NOISE_TYPE"
                      --spectral-norm-classification-head) ;;
    smart) CRITERION=(--criterion sentence_prediction_smart --smart-lambda "$SMART_LAMBDA" --smart-steps "$SMART_STEPS"
                      --smart-step-size "$SMART_STEP_SIZE" --smart-noise-std "$SMART_NOISE_STD"
                      --smart-norm-type "$SMART_NORM_TYPE") ;;
    freelb) TASK_NAME=sentence_prediction_adv
            CRITERION=(--criterion sentence_prediction --adv-steps "${ADV_STEPS[$TASK]}" --adv-lr "${ADV_LR[$TASK]}"
                       --adv-init-mag "${ADV_INIT_MAG[$TASK]}" --adv-max-norm "${ADV_MAX_NORM[$TASK]}"
                       --adv-norm-type "$ADV_NORM_TYPE") ;;
    *) echo "error: unknown METHOD '$METHOD' (std std++ r3f r4f smart freelb)" >&2; exit 2 ;;
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
    --task "$TASK_NAME" --num-classes "${NUM_CLASSES[$TASK]}" --init-token 0 --separator-token 2 \
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
