#!/usr/bin/env bash
# Summarise the CNN/DailyMail test set with fairseq-generate and score it with ROUGE (python -m r3f_experiments.rouge).
#
#   bash scripts/summarization/cnn_dm/evaluate.sh CHECKPOINT [OUT_DIR]
#
# Environment: DATA_DIR (what prepare.sh wrote, default summarization/cnn_dm), BPE_ENCODER, BPE_VOCAB,
# GEN_BATCH_SIZE, GENERATE_FLAGS (extra fairseq-generate flags, e.g. --fp16 on a GPU).
# OUT_DIR (default CHECKPOINT's folder/eval) gets generate.out, test.hypo and rouge.json.
# Search settings (beam, length penalty, lengths): r3f_experiments/recipes/summarization.py.
set -euo pipefail
DATASET=cnn_dm
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
summarization_evaluate "$@"
