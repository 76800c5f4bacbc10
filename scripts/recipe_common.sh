# Shared by the shell scripts (recipes, demo, benchmarks): functions only, nothing runs.
#
#   source "${ROOT}/scripts/recipe_common.sh"    # after setting ROOT (the repository)
PYTHON="${PYTHON:-python3}"

# print_usage SCRIPT: the comment block at the top of SCRIPT (after the #! line, if any).
print_usage() {
    awk 'NR == 1 && /^#!/ { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$1"
}

# handle_help SCRIPT "$@": -h / --help prints SCRIPT's usage and exits 0.
handle_help() {
    local script=$1; shift
    if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then print_usage "$script"; exit 0; fi
    return 0
}

# parse_run_args "$@": optional SEED and SAVE_DIR, then `--` and extra fairseq flags.
# Sets SEED (default 1), SAVE_DIR (default empty) and EXTRA.
parse_run_args() {
    SEED=1; SAVE_DIR=""
    if [[ $# -gt 0 && $1 != "--" ]]; then SEED=$1; shift; fi
    if [[ $# -gt 0 && $1 != "--" ]]; then SAVE_DIR=$1; shift; fi
    if [[ $# -gt 0 && $1 == "--" ]]; then shift; fi
    EXTRA=("$@")
}

# resolve_precision: --amp when a GPU is present, unless PRECISION is set ("" = fp32).
# Not --fp16: pure half precision rounds most of the sigma = 1e-5 noise away (docs/method.md).
resolve_precision() {
    PRECISION="${PRECISION-auto}"
    if [[ "$PRECISION" == auto ]]; then
        PRECISION=""
        "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' && PRECISION=--amp
    fi
    return 0
}

# fairseq_tool NAME: the console script of the fairseq installed for $PYTHON: beside the
# interpreter, or (fairseq installed with pip --target or --user) the one on PATH.
fairseq_tool() {
    local beside
    beside="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/$1"
    if [[ -x "$beside" ]] || ! command -v "$1" > /dev/null; then
        echo "$beside"
    else
        command -v "$1"
    fi
}

# require_inputs VAR_OF_PRETRAINED DATA_FILE WHAT: before a run (not under DRY_RUN, whose command may
# run elsewhere), the pre-trained model named by the variable (when set) and the data must exist:
# a typo must not start a run from random init, nor fail after the set-up.
require_inputs() {
    local var=$1 data_file=$2 what=$3
    [[ -n "${DRY_RUN:-}" ]] && return 0
    if [[ -n "${!var}" && ! -f "${!var}" ]]; then
        echo "error: ${var}=${!var}: no such file (the pre-trained model.pt; ${var}= trains from random init)" >&2
        exit 2
    fi
    if [[ ! -f "$data_file" ]]; then
        echo "error: ${what}: no ${data_file}" >&2
        exit 2
    fi
}

# recipe_command FAMILY NAME... [OPTIONS]: the fairseq-train command that the hyper-parameter
# tables (r3f_experiments/recipes) give, into the array CMD; PRECISION's flags are appended.
# A bad task, dataset or method exits with the tables' message (status 2).
recipe_command() {
    local words rc=0 p precision=()
    for p in $PRECISION; do precision+=("--precision=$p"); done
    words="$(mktemp)"
    "$PYTHON" -m r3f_experiments.recipes command "$@" --fairseq-train "$(fairseq_tool fairseq-train)" \
        --user-dir "${ROOT}/fairseq_r3f" "${precision[@]}" > "$words" || rc=$?
    if (( rc )); then rm -f "$words"; exit "$rc"; fi
    mapfile -d '' CMD < "$words"
    rm -f "$words"
}

# run_showing_progress LOG CMD...: CMD with all its output (stdout and stderr) into LOG, and its
# progress lines ("[TAG] ...": a sweep's submitted / done / FAILED / ETA lines, not the runs it skips
# as finished) on the terminal as they come. Returns CMD's exit status. Ctrl-C reaches CMD alone: tee
# and awk ignore it and pass on what CMD writes while it stops (a sweep ends its runs first).
run_showing_progress() {
    local log=$1; shift
    "$@" 2>&1 | (trap '' INT; exec tee "$log") \
        | (trap '' INT; exec awk '/^\[[A-Za-z_]+\] / && !/: skipped \(finished/ { print; fflush() }')
    return "${PIPESTATUS[0]}"
}

# run_recipe NAME...: run CMD with the EXTRA flags last (they override the rest) in SAVE_DIR, as
# the run "NAME... seed SEED" (e.g. run_recipe glue RTE r3f). SAVE_DIR holds one run: its record
# (SAVE_DIR/recipe_run.txt, written at the first start) must match this run and its settings, or
# the rerun is refused before fairseq starts (fairseq would go on from another run's checkpoint);
# RESUME_ANYWAY=1 goes on with other settings. SAVE_DIR/.lock is held while the run trains: a
# second run into the same SAVE_DIR is refused, naming the holder's pid (r3f_experiments/run_folder.py).
# DRY_RUN=1 prints the command (one line, shell-quoted) instead, e.g. for a scheduler.
run_recipe() {
    if [[ -n "${DRY_RUN:-}" ]]; then
        printf '%q ' "${CMD[@]}" "${EXTRA[@]}"
        echo
        return 0
    fi
    local anyway=()
    case "${RESUME_ANYWAY:-}" in
        "" | 0) ;;
        1) anyway=(--resume-anyway) ;;
        *) echo "error: RESUME_ANYWAY=${RESUME_ANYWAY}: 1 (go on with other settings) or unset" >&2; exit 2 ;;
    esac
    exec "$PYTHON" -m r3f_experiments.run_folder "$SAVE_DIR" --run "$*" --seed "$SEED" "${anyway[@]}" \
        -- "${CMD[@]}" "${EXTRA[@]}"
}

# Run instead of sourced: -h / --help prints the usage above; anything else is an error.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    handle_help "$0" "$@"
    print_usage "$0" >&2
    exit 2
fi
