#!/usr/bin/env bash
# Prepare CNN/DailyMail for BART: JSON-lines -> text pairs -> GPT-2 BPE -> fairseq-preprocess (BART's dict).
#
#   bash scripts/summarization/cnn_dm/prepare.sh [JSONL_DIR] [OUT_DIR]
#
# JSONL_DIR (default summarization/cnn_dm/jsonl) holds {train,valid,test}.jsonl with fields article, highlights (the non-anonymised
# CNN/DailyMail 3.0.0 of See et al. 2017).
# Missing JSONL_DIR: downloaded with the `datasets` package when it is installed and online.
# OUT_DIR (default summarization/cnn_dm) gets raw/ (text; raw/test.target = ROUGE references),
# bpe/ and bin/ (what train.sh reads). Environment: BPE_ENCODER, BPE_VOCAB (GPT-2 BPE
# encoder.json, vocab.bpe; default gpt2_bpe/), BART_DICT (default bart.large/dict.txt), WORKERS.
set -euo pipefail
DATASET=cnn_dm
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
summarization_prepare "$@"
