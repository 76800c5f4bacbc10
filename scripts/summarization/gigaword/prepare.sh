#!/usr/bin/env bash
# Prepare Gigaword for BART: JSON-lines -> text pairs -> GPT-2 BPE -> fairseq-preprocess (BART's dict).
#
#   bash scripts/summarization/gigaword/prepare.sh [JSONL_DIR] [OUT_DIR]
#
# JSONL_DIR (default summarization/gigaword/jsonl) holds {train,valid,test}.jsonl with fields document, summary (the Gigaword
# headline-generation data of Rush et al. 2015).
# Missing JSONL_DIR: downloaded with the `datasets` package when it is installed and online.
# OUT_DIR (default summarization/gigaword) gets raw/ (text; raw/test.target = ROUGE references),
# bpe/ and bin/ (what train.sh reads). Environment: BPE_ENCODER, BPE_VOCAB (GPT-2 BPE
# encoder.json, vocab.bpe; default gpt2_bpe/), BART_DICT (default bart.large/dict.txt), WORKERS.
set -euo pipefail
DATASET=gigaword
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
summarization_prepare "$@"
