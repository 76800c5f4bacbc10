#!/usr/bin/env bash
# Fine-tune RoBERTa on one GLUE task with one method, the paper's hyper-parameters.
#
#   bash scripts/glue/train.sh TASK METHOD [SEED] [SAVE_DIR] [-- EXTRA fairseq-train FLAGS]
#
#   TASK     MNLI QNLI QQP SST-2 RTE MRPC CoLA; with PRESET=small or converged also any other
#            classification data-bin GLUE_BIN/TASK-bin (input0/, label/; classes from label/dict.txt, accuracy)
#   METHOD   std     fairseq's sentence_prediction
#            std++   std trained twice as long (Zhang et al. 2020: longer fine-tuning; the Adam
#                    bias correction they restore is already in fairseq's Adam)
#            r3f     sentence_prediction_r3f
#            r4f     r3f + --spectral-norm-classification-head (1-Lipschitz head)
#            rdrop   R-Drop: r3f's loss with --noise-type none (the passes differ by dropout only)
#            r3f-rel r3f with sigma relative to the token-embedding RMS (--noise-scale relative)
#            smart   sentence_prediction_smart (SMART, MT-DNN's published defaults)
#            freelb  --task sentence_prediction_adv (FreeLB, its authors' per-task RoBERTa-large settings)
#   SEED     default 1;  SAVE_DIR default checkpoints/glue/TASK/METHOD/seedSEED
#
# PRESET (environment): paper (default; RoBERTa-large, Tables 5-6) or small (a converted BERT-size
# encoder such as all-MiniLM-L6-v2 on CPU cores: one short schedule for every task, the model
# flags and pair layout read from ROBERTA's checkpoint, nothing saved) or converged (the same
# encoders, 3 epochs of the task's training set, validated every epoch, SAVE_DIR/checkpoint_best.pt
# kept). MAX_UPDATE, LR, BATCH_SIZE (environment) replace the preset's; warm-up (6%) and the decay
# follow the updates, the converged preset's epochs the batch size.
#
# Paths from the environment: GLUE_BIN (default glue_bin; TASK-bin inside, from
# scripts/glue/prepare.sh), ROBERTA (pre-trained model.pt, default roberta.large/model.pt;
# empty = random init), ARCH (paper preset; default roberta_large), R3F_LAMBDA, NOISE_TYPE, SMART_LAMBDA, PRECISION
# (default: --amp when a GPU is present), NO_SEPARATOR_TOKEN=1 (for a BERT converted with
# WordPiece: <s> A </s> B </s>, BERT's [CLS] A [SEP] B [SEP]; model flags go after `--`). Flags after `--` come last and override the rest.
# PROBE_CHECKPOINT (with METHOD std): a linear probe of that checkpoint's frozen encoder on TASK
# (--task sentence_prediction_probe, docs/probing.md), the preset's schedule; ROBERTA defaults to empty.
# DRY_RUN=1 prints the command instead of running it.
#
# Rerun after a kill, the same command resumes from SAVE_DIR/checkpoint_last.pt (fairseq's
# --finetune-from-model reads ROBERTA only when SAVE_DIR holds no checkpoint yet); flags that only
# say when to stop (--max-update after --) may change. SAVE_DIR holds one run: its first start
# writes SAVE_DIR/recipe_run.txt (run, seed, settings), and a run of another task, method or seed,
# or other settings, is refused there before fairseq starts (RESUME_ANYWAY=1 goes on with other
# settings). While it trains, the run holds SAVE_DIR/.lock: a second train.sh into it is refused.
#
# Hyper-parameters: paper Table 5 (per task), Table 6 (shared), SMART's and FreeLB's settings,
# all in one table, r3f_experiments/recipes/glue.py (which configs/glue/*.yaml are generated from).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "${ROOT}/scripts/recipe_common.sh"
handle_help "$0" "$@"
[[ $# -ge 2 ]] || { print_usage "$0" >&2; exit 2; }
TASK=$1; METHOD=$2; shift 2
parse_run_args "$@"

GLUE_BIN="${GLUE_BIN:-glue_bin}"
SAVE_DIR="${SAVE_DIR:-checkpoints/glue/${TASK}/${METHOD}/seed${SEED}}"
PROBE_CHECKPOINT="${PROBE_CHECKPOINT:-}"
if [[ -n "$PROBE_CHECKPOINT" ]]; then ROBERTA="${ROBERTA-}"; else ROBERTA="${ROBERTA-roberta.large/model.pt}"; fi
resolve_precision
if [[ -n "$PROBE_CHECKPOINT" && -z "${DRY_RUN:-}" && ! -f "$PROBE_CHECKPOINT" ]]; then
    echo "error: PROBE_CHECKPOINT=${PROBE_CHECKPOINT}: no such file (the checkpoint whose encoder the probe reads)" >&2
    exit 2
fi
require_inputs ROBERTA "${GLUE_BIN}/${TASK}-bin/input0/dict.txt" \
    "GLUE_BIN=${GLUE_BIN} holds no prepared ${TASK} (bash scripts/glue/prepare.sh ${TASK} GLUE_DIR ${GLUE_BIN})"
recipe_command glue "$TASK" "$METHOD" --data "${GLUE_BIN}/${TASK}-bin" --pretrained "$ROBERTA" \
    ${ARCH:+--arch "$ARCH"} ${PRESET:+--preset "$PRESET"} \
    ${MAX_UPDATE:+--max-update "$MAX_UPDATE"} ${LR:+--lr "$LR"} ${BATCH_SIZE:+--batch-size "$BATCH_SIZE"} --seed "$SEED" --save-dir "$SAVE_DIR" \
    ${R3F_LAMBDA:+--r3f-lambda "$R3F_LAMBDA"} ${NOISE_TYPE:+--noise-type "$NOISE_TYPE"} \
    ${SMART_LAMBDA:+--smart-lambda "$SMART_LAMBDA"} ${NO_SEPARATOR_TOKEN:+--no-separator-token} \
    ${PROBE_CHECKPOINT:+--probe-checkpoint "$PROBE_CHECKPOINT"}
run_recipe glue "$TASK" "$METHOD"
