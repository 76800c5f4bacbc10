#!/usr/bin/env bash
# Summarise the CNN/DailyMail test set with fairseq-generate and score it with ROUGE (scripts/summarization/score.py).
#
#   bash scripts/summarization/cnn_dm/evaluate.sh CHECKPOINT [OUT_DIR]
#
# Environment: DATA_DIR (what prepare.sh wrote, default summarization/cnn_dm), BPE_ENCODER, BPE_VOCAB,
# GEN_BATCH_SIZE, GENERATE_FLAGS (extra fairseq-generate flags, e.g. --fp16 on a GPU).
# OUT_DIR (default CHECKPOINT's folder/eval) gets generate.out, test.hypo and rouge.json.
set -euo pipefail

# ---- generation: BART's CNN/DailyMail settings (fairseq examples/bart) ----
BEAM=4
LENPEN=2.0
MAX_LEN_B=140
MIN_LEN=55
NO_REPEAT_NGRAM_SIZE=3
LSUM=1                           # also report summary-level ROUGE-Lsum (sentence-split)
# ------------------------------------------------------------------------------------------------
DATASET=cnn_dm
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
summarization_evaluate "$@"
