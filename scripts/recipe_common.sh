# Shared by the recipe scripts (GLUE, XNLI, summarization); source it after setting ROOT.
PYTHON="${PYTHON:-python3}"

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

# fairseq_tool NAME: the console script of the fairseq installed for $PYTHON.
fairseq_tool() {
    echo "$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/$1"
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

# run_recipe: run CMD with the EXTRA flags last (they override the rest) in SAVE_DIR.
# DRY_RUN=1 prints the command (one line, shell-quoted) instead, e.g. for a scheduler.
run_recipe() {
    if [[ -n "${DRY_RUN:-}" ]]; then
        printf '%q ' "${CMD[@]}" "${EXTRA[@]}"
        echo
        return 0
    fi
    mkdir -p "$SAVE_DIR"
    exec "${CMD[@]}" "${EXTRA[@]}"
}
