#!/usr/bin/env bash
# The converged Table 2 on one GPU, in one command that ends by a deadline: every classification
# task in GLUE_BIN x the core methods and the baselines, many runs side by side on the card
# (one CPU thread each), then the report of what finished.
#
#   GLUE_BIN=packed/glue_bin ROBERTA=packed/model.pt bash scripts/glue/gpu_grid.sh RUNS_DIR REPORT_DIR
#
#   GLUE_BIN, ROBERTA  as for scripts/glue/train.sh; to ship them small, trim the vocabulary to the
#                      data and halve the weights first: python -m r3f_experiments.trim_vocab
#                      CONVERTED GLUE_BIN packed --splits train valid --half (docs/glue.md)
#   RUNS_DIR           the sweep's folder (TASK/METHOD/seedN); runs already finished there are
#                      skipped, so unpacking an earlier REPORT_DIR/logs.tar.gz into it goes on
#   REPORT_DIR         table2.md, table2.csv, runs.csv (sweep report, with a majority-class row),
#                      logs.tar.gz (every run's train.log) and grid.log (the sweeps' progress)
#
# Tasks run smallest training set first, the core methods before the baselines, so that a grid
# cut by the deadline has whole cells of the cheap tasks. Exit status 0 when every planned run
# finished, 3 when the deadline stopped runs (the finished ones are reported; rerun to go on).
# Fine-tuning is fp32 (PRECISION empty): at the paper's sigma the noise is below half precision's
# resolution of the embeddings (docs/cost.md), so R3F under --amp would not be R3F.
set -euo pipefail

# ---- settings (the converged Table 2, docs/glue.md) ---------------------------------------------
CORE_METHODS="${CORE_METHODS:-std rdrop r3f r4f}"  # >= 5 seeds each
CORE_SEEDS="${CORE_SEEDS:-1-5}"
BASELINE_METHODS="${BASELINE_METHODS:-smart freelb}"  # >= 3 seeds each
BASELINE_SEEDS="${BASELINE_SEEDS:-1-3}"
JOBS="${JOBS:-12}"           # runs side by side on the one GPU
DEADLINE="${DEADLINE:-480}"  # seconds from the start for the runs; the report comes after
REFERENCES="${REFERENCES:-}" # a CSV of published rows for the report (sweep report --references)
# --------------------------------------------------------------------------------------------------
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; }
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[[ $# -eq 2 ]] || { usage >&2; exit 2; }
RUNS_DIR=$1; REPORT_DIR=$2
: "${GLUE_BIN:?set GLUE_BIN: the folder of TASK-bin data-bins}"
: "${ROBERTA:?set ROBERTA: the pre-trained model.pt}"
[[ -f "$ROBERTA" ]] || { echo "error: ROBERTA=$ROBERTA: no such file" >&2; exit 2; }
[[ "$DEADLINE" =~ ^[0-9]+$ && "$DEADLINE" -gt 0 ]] || { echo "error: DEADLINE=$DEADLINE: seconds, > 0" >&2; exit 2; }
PYTHON="${PYTHON:-python3}"
export PRESET=converged PRECISION="${PRECISION-}" GLUE_BIN ROBERTA OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

# every TASK-bin of GLUE_BIN, smallest training set first (the recipe's own count)
TASKS=$("$PYTHON" - "$GLUE_BIN" <<'EOF'
import os, sys
from r3f_experiments.recipes.glue import train_size
glue_bin = sys.argv[1]
names = [n[:-4] for n in os.listdir(glue_bin) if n.endswith("-bin")] if os.path.isdir(glue_bin) else []
if not names:
    sys.exit(f"error: GLUE_BIN={glue_bin} holds no TASK-bin")
print(" ".join(sorted(names, key=lambda t: (train_size(os.path.join(glue_bin, t + "-bin")), t))))
EOF
)
mkdir -p "$RUNS_DIR" "$REPORT_DIR"
START=$(date +%s)
status=0
sweep() {  # SEEDS METHODS...: one sweep over every task, stopped at the deadline
    local seeds=$1; shift
    local left=$((DEADLINE - ($(date +%s) - START)))
    if ((left <= 0)); then status=3; return 0; fi
    echo "[gpu_grid] $* x ${TASKS} x seeds ${seeds}: ${left} s left" | tee -a "$REPORT_DIR/grid.log"
    local rc=0
    timeout --signal=TERM --kill-after=30 "$left" "$PYTHON" -m r3f_experiments.sweep run --jobs "$JOBS" \
        --out-dir "$RUNS_DIR" --tasks $TASKS --methods "$@" --seeds $seeds >> "$REPORT_DIR/grid.log" 2>&1 || rc=$?
    case $rc in
        0) ;;
        124 | 130 | 137) status=3; echo "[gpu_grid] the deadline stopped this sweep" | tee -a "$REPORT_DIR/grid.log" ;;
        *) status=1; echo "[gpu_grid] sweep exit $rc (failed runs: grid.log)" | tee -a "$REPORT_DIR/grid.log" ;;
    esac
}
cd "$ROOT"
sweep "$CORE_SEEDS" $CORE_METHODS
[[ -z "$BASELINE_METHODS" ]] || sweep "$BASELINE_SEEDS" $BASELINE_METHODS

(cd "$RUNS_DIR" && find . -path '*/seed*/train.log*' -print0 | tar czf - --null -T -) > "$REPORT_DIR/logs.tar.gz"
finished=$(cd "$RUNS_DIR" && grep -l "done training in" */*/seed*/train.log 2>/dev/null | wc -l || true)
echo "[gpu_grid] ${finished} runs finished in $(($(date +%s) - START)) s" | tee -a "$REPORT_DIR/grid.log"
if ((finished > 0)); then
    "$PYTHON" -m r3f_experiments.sweep report --out-dir "$RUNS_DIR" --report-dir "$REPORT_DIR" --no-plots \
        --majority-from "$GLUE_BIN" ${REFERENCES:+--references "$REFERENCES"} > /dev/null 2>> "$REPORT_DIR/grid.log" \
        || { echo "[gpu_grid] the report failed (grid.log)" >&2; status=1; }
fi
exit $status
