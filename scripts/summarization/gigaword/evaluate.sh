#!/usr/bin/env bash
# Summarise the Gigaword test set with fairseq-generate and score it with ROUGE (scripts/summarization/score.py).
#
#   bash scripts/summarization/gigaword/evaluate.sh CHECKPOINT [OUT_DIR]
#
# Environment: DATA_DIR (what prepare.sh wrote, default summarization/gigaword), BPE_ENCODER, BPE_VOCAB,
# GEN_BATCH_SIZE, GENERATE_FLAGS (extra fairseq-generate flags, e.g. --fp16 on a GPU).
# OUT_DIR (default CHECKPOINT's folder/eval) gets generate.out, test.hypo and rouge.json.
set -euo pipefail

# ---- generation: BART published none for Gigaword; its XSum settings with
# lengths for headlines (our choice) ----
BEAM=6
LENPEN=1.0
MAX_LEN_B=30
MIN_LEN=1
NO_REPEAT_NGRAM_SIZE=3
LSUM=""                         # also report summary-level ROUGE-Lsum (sentence-split)
# ------------------------------------------------------------------------------------------------
DATASET=gigaword
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
summarization_evaluate "$@"
