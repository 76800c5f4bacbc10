#!/usr/bin/env bash
# Zero-shot XNLI accuracy of a fine-tuned checkpoint on every language, in Table 3's layout.
#
#   bash scripts/xnli/evaluate.sh CHECKPOINT [XNLI_BIN] [-- EXTRA fairseq-validate FLAGS]
#
# Every example of every language is scored (--required-batch-size-multiple 1: fairseq's default of 8
# drops a last batch of fewer than 8 sentences), and checked: a language whose count in the log
# (valid*_bsz) differs from its size in XNLI_BIN/input0/valid*.idx fails the evaluation.
# The fairseq-validate log is written beside CHECKPOINT (xnli_eval.log).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "${ROOT}/scripts/recipe_common.sh"
handle_help "$0" "$@"
[[ $# -ge 1 ]] || { print_usage "$0" >&2; exit 2; }
CHECKPOINT=$1; shift
XNLI_BIN="${XNLI_BIN:-xnli_bin}"
if [[ $# -gt 0 && $1 != "--" ]]; then XNLI_BIN=$1; shift; fi
if [[ $# -gt 0 && $1 == "--" ]]; then shift; fi
LANGS="${XNLI_BIN}/languages.txt"
[[ -f "$LANGS" ]] || { echo "error: ${LANGS} missing: XNLI_BIN must come from scripts/xnli/prepare.sh" >&2; exit 2; }
n=$(grep -c . "$LANGS")
subsets=valid
for (( i = 1; i < n; i++ )); do subsets+=",valid${i}"; done
LOG="$(dirname "$CHECKPOINT")/xnli_eval.log"
# fairseq-validate needs the criterion: sentence_prediction reads its head name from it
"$(fairseq_tool fairseq-validate)" "$XNLI_BIN" \
    --user-dir "${ROOT}/fairseq_r3f" --task sentence_prediction --criterion sentence_prediction \
    --path "$CHECKPOINT" --valid-subset "$subsets" --batch-size 32 --required-batch-size-multiple 1 \
    --log-format json "$@" > "$LOG" 2>&1 \
    || { tail -20 "$LOG" >&2; exit 1; }
"$PYTHON" -m r3f_experiments.data.xnli table "$LOG" --languages-file "$LANGS" --data "$XNLI_BIN"
