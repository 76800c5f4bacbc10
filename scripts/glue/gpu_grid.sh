#!/usr/bin/env bash
# The converged Table 2 on one GPU, in one command that ends by a deadline: every classification
# task in GLUE_BIN x the core methods and the baselines, many runs side by side on the card
# (one CPU thread each), then the probing experiments of representational collapse (Figures 3-5)
# from the table's source-task runs, then the reports of what finished.
#
#   GLUE_BIN=packed/glue_bin ROBERTA=packed/model.pt bash scripts/glue/gpu_grid.sh RUNS_DIR REPORT_DIR
#
#   GLUE_BIN, ROBERTA  as for scripts/glue/train.sh; to ship them small, trim the vocabulary to the
#                      data and halve the weights first: python -m r3f_experiments.trim_vocab
#                      CONVERTED GLUE_BIN packed --splits train valid --half (docs/glue.md)
#   RUNS_DIR           the sweep's folder (TASK/METHOD/seedN); runs already finished there are
#                      skipped, so unpacking an earlier REPORT_DIR/logs.tar.gz into it goes on
#   REPORT_DIR         table2.md, table2.csv, runs.csv (sweep report, with a majority-class row),
#                      logs.tar.gz (every run's train.log) and grid.log (the sweeps' progress);
#                      probing/EXPERIMENT/summary.md + report.json (probe accuracy, the paper's) and
#                      summary-metric.md + report-metric.json (each task's metric), probing/logs.tar.gz (docs/probing.md)
#
# Tasks run smallest training set first, the core methods before the baselines, so that a grid
# cut by the deadline has whole cells of the cheap tasks. Exit status 0 when every planned run
# finished, 3 when the deadline stopped runs (the finished ones are reported; rerun to go on).
# Fine-tuning is fp32 (PRECISION empty): at the paper's sigma the noise is below half precision's
# resolution of the embeddings (docs/cost.md), so R3F under --amp would not be R3F.
# Probing (python -m r3f_experiments.probing, --finetuned RUNS_DIR): the source is SST-2 where
# GLUE_BIN has it, else its largest training set; a method is probed when its source runs of every
# PROBE_SEED finished; the chains (Figure 4: the source then up to 3 other tasks; Figure 5: that
# chain CYCLES times) go on from those runs. Probes are fitted on cached features of the frozen encoder.
set -euo pipefail

# ---- settings (the converged Table 2, docs/glue.md) ---------------------------------------------
CORE_METHODS="${CORE_METHODS:-std rdrop r3f r4f}"  # >= 5 seeds each
CORE_SEEDS="${CORE_SEEDS:-1-5}"
BASELINE_METHODS="${BASELINE_METHODS-smart freelb}"  # >= 3 seeds each; empty: none
BASELINE_SEEDS="${BASELINE_SEEDS:-1-3}"
JOBS="${JOBS:-12}"           # runs side by side on the one GPU
DEADLINE="${DEADLINE:-480}"  # seconds from the start for the runs; the report comes after
REFERENCES="${REFERENCES:-}" # a CSV of published rows for the report (sweep report --references)
PROBING="${PROBING-cross-task sequential cyclic}"  # Figures 3, 4, 5 after the table; empty: none
PROBE_METHODS="${PROBE_METHODS:-std rdrop r3f r4f smart}"  # Figure 3's rows (+ the pre-trained encoder)
CHAIN_METHODS="${CHAIN_METHODS:-std r3f r4f}"              # Figures 4-5: std against R3F and R4F
PROBE_SEEDS="${PROBE_SEEDS:-1-3}"                          # >= 3 seeds of the source fine-tuning
PROBE_TRAIN_EXAMPLES="${PROBE_TRAIN_EXAMPLES:-}"           # probes train on N examples (empty: all)
CYCLES="${CYCLES:-3}"                                      # Figure 5
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
for experiment in $PROBING; do
    case $experiment in
        cross-task | sequential | cyclic) ;;
        *) echo "error: PROBING=${PROBING}: ${experiment} is not cross-task, sequential or cyclic" >&2; exit 2 ;;
    esac
done
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

(cd "$RUNS_DIR" && find . -path ./probing -prune -o -path '*/seed*/train.log*' -print0 | tar czf - --null -T -) \
    > "$REPORT_DIR/logs.tar.gz"
finished=$(cd "$RUNS_DIR" && grep -l "done training in" */*/seed*/train.log 2>/dev/null | wc -l || true)
echo "[gpu_grid] ${finished} runs finished in $(($(date +%s) - START)) s" | tee -a "$REPORT_DIR/grid.log"
if ((finished > 0)); then
    "$PYTHON" -m r3f_experiments.sweep report --out-dir "$RUNS_DIR" --report-dir "$REPORT_DIR" --no-plots \
        --majority-from "$GLUE_BIN" ${REFERENCES:+--references "$REFERENCES"} > /dev/null 2>> "$REPORT_DIR/grid.log" \
        || { echo "[gpu_grid] the report failed (grid.log)" >&2; status=1; }
fi
probe() {  # EXPERIMENT METHODS...: one probing experiment from the table's runs, stopped at the deadline
    local experiment=$1; shift
    local left=$((DEADLINE - ($(date +%s) - START)))
    if ((left <= 0)); then status=3; return 0; fi
    echo "[gpu_grid] probing ${experiment}: $* from ${SOURCE}, seeds ${PROBE_SEEDS}: ${left} s left" | tee -a "$REPORT_DIR/grid.log"
    local where=(--chain $CHAIN) rc=0
    [[ "$experiment" != cross-task ]] || where=(--source "$SOURCE")
    [[ "$experiment" != cyclic ]] || where+=(--cycles "$CYCLES")
    # cycle 1 of the cyclic chain is the sequential chain: its stages are taken, not trained again
    if [[ "$experiment" == cyclic && -f "$RUNS_DIR/probing/sequential/plan.json" ]]; then
        where+=(--stages-from "$RUNS_DIR/probing/sequential")
    fi
    timeout --signal=TERM --kill-after=30 "$left" "$PYTHON" -m r3f_experiments.probing "$experiment" --no-plots \
        --out-dir "$RUNS_DIR/probing" --finetuned "$RUNS_DIR" --methods "$@" --seeds "$PROBE_SEEDS" \
        --jobs "$JOBS" "${where[@]}" ${PROBE_TRAIN_EXAMPLES:+--probe-train-examples "$PROBE_TRAIN_EXAMPLES"} \
        >> "$REPORT_DIR/grid.log" 2>&1 || rc=$?
    case $rc in
        0) ;;
        124 | 130 | 137) status=3; echo "[gpu_grid] the deadline stopped probing ${experiment}" | tee -a "$REPORT_DIR/grid.log" ;;
        *) status=1; echo "[gpu_grid] probing ${experiment} exit $rc (grid.log)" | tee -a "$REPORT_DIR/grid.log" ;;
    esac
    if [[ -f "$RUNS_DIR/probing/${experiment}/report.json" ]]; then
        mkdir -p "$REPORT_DIR/probing/${experiment}"
        cp "$RUNS_DIR/probing/${experiment}/"{summary.md,report.json} "$REPORT_DIR/probing/${experiment}/"
    fi
}
if [[ -n "$PROBING" ]]; then
    # three lines: the source, the chain, the methods whose source runs finished for every probe seed
    mapfile -t PLAN < <("$PYTHON" - "$RUNS_DIR" "$PROBE_SEEDS" "$PROBE_METHODS" "$CHAIN_METHODS" <<'EOF'
import os, sys
from r3f_experiments.probing import SOURCE, default_chain, finetuned_checkpoint, tasks_in
from r3f_experiments.recipes.glue import train_size
from r3f_experiments.runs import parse_seeds
runs_dir, seeds, methods, chain_methods = sys.argv[1], parse_seeds(sys.argv[2].split()), sys.argv[3], sys.argv[4]
glue_bin = os.environ["GLUE_BIN"]
present = tasks_in(glue_bin)
source = SOURCE if SOURCE in present else max(present, key=lambda t: train_size(os.path.join(glue_bin, t + "-bin")))
done = lambda m: all(os.path.isfile(finetuned_checkpoint(runs_dir, source, m, s)) for s in seeds)
print(source)
print(" ".join(default_chain(present, source)))
print(" ".join(m for m in methods.split() if done(m)))
print(" ".join(m for m in chain_methods.split() if done(m)))
EOF
    )
    SOURCE=${PLAN[0]}; CHAIN=${PLAN[1]}
    [[ "$CHAIN" == *" "* ]] || { echo "[gpu_grid] probing: GLUE_BIN holds ${SOURCE} alone, nothing to probe" | tee -a "$REPORT_DIR/grid.log"; PROBING=""; }
    [[ -z "$PROBING" ]] || mkdir -p "$REPORT_DIR/probing"
    for experiment in $PROBING; do
        if [[ "$experiment" == cross-task ]]; then methods=${PLAN[2]:-}; else methods=${PLAN[3]:-}; fi
        if [[ -z "$methods" ]]; then
            echo "[gpu_grid] probing ${experiment}: no method has finished ${SOURCE} runs of seeds ${PROBE_SEEDS}" | tee -a "$REPORT_DIR/grid.log"
            status=3; continue
        fi
        probe "$experiment" $methods
    done
    if [[ -n "$PROBING" && -d "$RUNS_DIR/probing" ]]; then
        # the same probes scored by each task's metric (MCC sees what accuracy hides on CoLA)
        "$PYTHON" -m r3f_experiments.probing report --score metric --no-plots --out-dir "$RUNS_DIR/probing" \
            >> "$REPORT_DIR/grid.log" 2>&1 || { status=1; echo "[gpu_grid] probing report --score metric failed (grid.log)" | tee -a "$REPORT_DIR/grid.log"; }
        for experiment in $PROBING; do
            if [[ -f "$RUNS_DIR/probing/${experiment}/report-metric.json" ]]; then
                cp "$RUNS_DIR/probing/${experiment}/"{summary-metric.md,report-metric.json} "$REPORT_DIR/probing/${experiment}/"
            fi
        done
        (cd "$RUNS_DIR/probing" && find . \( -name probe.json -o -name train.log -o -name chain.log \) -print0 \
            | tar czf - --null -T -) > "$REPORT_DIR/probing/logs.tar.gz"
    fi
fi
exit $status
