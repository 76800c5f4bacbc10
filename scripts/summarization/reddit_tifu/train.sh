#!/usr/bin/env bash
# Fine-tune BART on Reddit TIFU with standard fine-tuning or R3F (paper Table 4).
#
#   bash scripts/summarization/reddit_tifu/train.sh METHOD [SEED] [SAVE_DIR] [-- EXTRA fairseq-train FLAGS]
#
#   METHOD   std (label_smoothed_cross_entropy) | r3f (label_smoothed_cross_entropy_r3f)
#   SAVE_DIR default checkpoints/reddit_tifu/METHOD/seedSEED
# Environment: DATA (default summarization/reddit_tifu/bin), BART (pre-trained model.pt, default
# bart.large/model.pt; empty = from scratch), ARCH (default bart_large), R3F_LAMBDA, NOISE_TYPE,
# PRECISION (default --amp with a GPU). Flags after `--` come last and override the rest.
# A rerun resumes from SAVE_DIR/checkpoint_last.pt (BART is read only when there is none);
# SAVE_DIR holds one run, as for scripts/glue/train.sh.
# Hyper-parameters: paper Tables 7 (this dataset) and 8, in r3f_experiments/recipes/summarization.py.
set -euo pipefail
DATASET=reddit_tifu
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
summarization_train "$@"
