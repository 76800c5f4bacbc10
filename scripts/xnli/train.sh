#!/usr/bin/env bash
# Fine-tune XLM-R on English MultiNLI for zero-shot XNLI, the paper's Table 9 hyper-parameters.
#
#   bash scripts/xnli/train.sh METHOD [SEED] [SAVE_DIR] [-- EXTRA fairseq-train FLAGS]
#
#   METHOD   std | r3f | r4f   (as in scripts/glue/train.sh)
# Paths from the environment: XNLI_BIN (default xnli_bin, from scripts/xnli/prepare.sh),
# XLMR (pre-trained model.pt, default xlmr.large/model.pt; empty = random init),
# ARCH (default roberta_large: XLM-R large is a RoBERTa-large encoder), R3F_LAMBDA, NOISE_TYPE,
# PRECISION (default: --amp when a GPU is present). Flags after `--` come last.
# DRY_RUN=1 prints the command instead of running it. A rerun resumes from SAVE_DIR/checkpoint_last.pt;
# SAVE_DIR holds one run, as for scripts/glue/train.sh.
#
# Hyper-parameters: paper Table 9, in r3f_experiments/recipes/xnli.py (which configs/xnli/*.yaml
# are generated from). Model selection on the English dev set (zero-shot: no target-language data).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "${ROOT}/scripts/recipe_common.sh"
handle_help "$0" "$@"
[[ $# -ge 1 ]] || { print_usage "$0" >&2; exit 2; }
METHOD=$1; shift
parse_run_args "$@"
SAVE_DIR="${SAVE_DIR:-checkpoints/xnli/${METHOD}/seed${SEED}}"
XLMR="${XLMR-xlmr.large/model.pt}"
resolve_precision
XNLI_BIN="${XNLI_BIN:-xnli_bin}"
require_inputs XLMR "${XNLI_BIN}/input0/dict.txt" \
    "XNLI_BIN=${XNLI_BIN} is not prepared (bash scripts/xnli/prepare.sh)"
recipe_command xnli "$METHOD" --data "$XNLI_BIN" --pretrained "$XLMR" \
    --arch "${ARCH:-roberta_large}" --seed "$SEED" --save-dir "$SAVE_DIR" \
    ${R3F_LAMBDA:+--r3f-lambda "$R3F_LAMBDA"} ${NOISE_TYPE:+--noise-type "$NOISE_TYPE"}
run_recipe xnli "$METHOD"
