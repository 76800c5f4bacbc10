# Shared by the recipe scripts (scripts/glue/train.sh, scripts/xnli/train.sh); source it.
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
# Not --fp16: pure half precision rounds most of the sigma = 1e-5 noise away (README).
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
