#!/usr/bin/env bash
# Summarise the Reddit TIFU test set with fairseq-generate and score it with ROUGE (scripts/summarization/score.py).
#
#   bash scripts/summarization/reddit_tifu/evaluate.sh CHECKPOINT [OUT_DIR]
#
# Environment: DATA_DIR (what prepare.sh wrote, default summarization/reddit_tifu), BPE_ENCODER, BPE_VOCAB,
# GEN_BATCH_SIZE, GENERATE_FLAGS (extra fairseq-generate flags, e.g. --fp16 on a GPU).
# OUT_DIR (default CHECKPOINT's folder/eval) gets generate.out, test.hypo and rouge.json.
set -euo pipefail

# ---- generation: BART's XSum settings (fairseq examples/bart), min length 1 for
# short titles (our choice) ----
BEAM=6
LENPEN=1.0
MAX_LEN_B=60
MIN_LEN=1
NO_REPEAT_NGRAM_SIZE=3
LSUM=""                         # also report summary-level ROUGE-Lsum (sentence-split)
# ------------------------------------------------------------------------------------------------
DATASET=reddit_tifu
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
summarization_evaluate "$@"
