#!/usr/bin/env bash
# Prepare Reddit TIFU for BART: JSON-lines -> text pairs -> GPT-2 BPE -> fairseq-preprocess (BART's dict).
#
#   bash scripts/summarization/reddit_tifu/prepare.sh [JSONL_DIR] [OUT_DIR]
#
# JSONL_DIR (default summarization/reddit_tifu/jsonl) holds all.jsonl with fields documents, title, tldr (Kim et al. 2019),
# split here 80/10/10 (seed 1). VARIANT=short (default: summary = title, the version the paper's
# authors say they used) or VARIANT=long (summary = the TL;DR line).
# Missing JSONL_DIR: downloaded with the `datasets` package when it is installed and online.
# OUT_DIR (default summarization/reddit_tifu) gets raw/ (text; raw/test.target = ROUGE references),
# bpe/ and bin/ (what train.sh reads). Environment: BPE_ENCODER, BPE_VOCAB (GPT-2 BPE
# encoder.json, vocab.bpe; default gpt2_bpe/), BART_DICT (default bart.large/dict.txt), WORKERS.
set -euo pipefail
DATASET=reddit_tifu
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
summarization_prepare "$@"
