# Shared by scripts/summarization/<dataset>/{prepare,train,evaluate}.sh: functions only.
#
#   source scripts/summarization/common.sh    # after setting DATASET

# Hyper-parameters (paper Tables 7-8) and generation settings per dataset: one table,
# r3f_experiments/recipes/summarization.py (which configs/summarization/*.yaml are generated from).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "${ROOT}/scripts/recipe_common.sh"
die() { echo "error: $*" >&2; exit 1; }
DATA_ROOT="${DATA_ROOT:-summarization}"
VARIANT="${VARIANT:-short}"   # Reddit TIFU only: short (title) or long (TL;DR)

# BART's GPT-2 BPE and dictionary, from the environment or next to the pre-trained model
# (bart.large/ as unpacked from fairseq's bart.large.tar.gz lacks encoder.json/vocab.bpe:
# they are the GPT-2 BPE files of fairseq's RoBERTa/BART examples).
BPE_ENCODER="${BPE_ENCODER:-gpt2_bpe/encoder.json}"
BPE_VOCAB="${BPE_VOCAB:-gpt2_bpe/vocab.bpe}"
BART_DICT="${BART_DICT:-bart.large/dict.txt}"
check_bpe_files() {
    local var
    for var in BPE_ENCODER BPE_VOCAB BART_DICT; do
        [[ -f "${!var}" ]] || die "$var=${!var}: no such file. Set BPE_ENCODER, BPE_VOCAB (GPT-2 BPE
encoder.json, vocab.bpe) and BART_DICT (dict.txt of bart.large) to local copies (docs/summarization.md)."
    done
}

# summarization_prepare [JSONL_DIR] [OUT_DIR]: JSONL -> raw text, BPE ids, fairseq binaries.
summarization_prepare() {
    handle_help "$0" "$@"
    local jsonl_dir="${1:-${DATA_ROOT}/${DATASET}/jsonl}" out_dir="${2:-${DATA_ROOT}/${DATASET}}"
    check_bpe_files
    if [[ ! -e "${jsonl_dir}" ]]; then
        echo "[prepare] ${jsonl_dir} missing: trying the datasets hub copy of ${DATASET}" >&2
        "$PYTHON" -m r3f_experiments.data.summarization download "$DATASET" "$jsonl_dir" --variant "$VARIANT"
    fi
    "$PYTHON" -m r3f_experiments.data.summarization prepare "$DATASET" "$jsonl_dir" "$out_dir" \
        --variant "$VARIANT" --encoder-json "$BPE_ENCODER" --vocab-bpe "$BPE_VOCAB" --dict "$BART_DICT" \
        --workers "${WORKERS:-$(nproc 2>/dev/null || echo 1)}"
}

# summarization_train METHOD [SEED] [SAVE_DIR] [-- EXTRA]: fairseq-train with the block's settings.
summarization_train() {
    handle_help "$0" "$@"
    [[ $# -ge 1 ]] || die "usage: train.sh METHOD [SEED] [SAVE_DIR] [-- EXTRA fairseq-train FLAGS] (METHOD: std r3f)"
    local method=$1; shift
    parse_run_args "$@"
    local data="${DATA:-${DATA_ROOT}/${DATASET}/bin}"
    SAVE_DIR="${SAVE_DIR:-checkpoints/${DATASET}/${method}/seed${SEED}}"
    BART="${BART-bart.large/model.pt}"
    require_inputs BART "${data}/dict.source.txt" "DATA=${data} is not prepared (run prepare.sh first)"
    resolve_precision
    recipe_command summarization "$DATASET" "$method" --data "$data" --pretrained "$BART" \
        --arch "${ARCH:-bart_large}" --seed "$SEED" --save-dir "$SAVE_DIR" \
        ${R3F_LAMBDA:+--r3f-lambda "$R3F_LAMBDA"} ${NOISE_TYPE:+--noise-type "$NOISE_TYPE"} \
        ${UPDATE_FREQ:+--update-freq "$UPDATE_FREQ"}
    run_recipe summarization "$DATASET" "$method"
}

# summarization_evaluate CHECKPOINT [OUT_DIR]: fairseq-generate on the test split, then ROUGE.
# --required-batch-size-multiple 1: with fairseq's default of 8, batch_by_size silently drops
# a last batch smaller than 8 sentences, and those test examples would never be summarised.
summarization_evaluate() {
    handle_help "$0" "$@"
    [[ $# -ge 1 ]] || die "usage: evaluate.sh CHECKPOINT [OUT_DIR] (env DATA_DIR: the prepared folder)"
    local checkpoint=$1 prepared="${DATA_DIR:-${DATA_ROOT}/${DATASET}}"
    local out_dir="${2:-$(dirname "$checkpoint")/eval}"
    [[ -f "$checkpoint" ]] || die "no checkpoint $checkpoint"
    local references="${prepared}/raw/test.target"
    [[ -f "$references" && -f "${prepared}/bin/dict.source.txt" ]] \
        || die "${prepared} is not a folder written by prepare.sh (needs raw/test.target and bin/)"
    check_bpe_files
    local search lsum=()
    mapfile -d '' search < <("$PYTHON" -m r3f_experiments.recipes generate-flags "$DATASET")
    [[ ${#search[@]} -gt 0 ]] || die "no generation settings for ${DATASET}"
    if [[ "$("$PYTHON" -m r3f_experiments.recipes generate-flags "$DATASET" --lsum)" == 1 ]]; then
        lsum=(--lsum)  # also summary-level ROUGE-Lsum (sentence-split)
    fi
    mkdir -p "$out_dir"
    "$(fairseq_tool fairseq-generate)" "${prepared}/bin" --user-dir "${ROOT}/fairseq_r3f" \
        --path "$checkpoint" --task translation --source-lang source --target-lang target \
        --truncate-source --max-source-positions 1024 --max-target-positions 1024 --gen-subset test \
        "${search[@]}" --batch-size "${GEN_BATCH_SIZE:-32}" \
        --required-batch-size-multiple 1 \
        --bpe gpt2 --gpt2-encoder-json "$BPE_ENCODER" --gpt2-vocab-bpe "$BPE_VOCAB" \
        ${GENERATE_FLAGS:-} > "${out_dir}/generate.out"
    "$PYTHON" -m r3f_experiments.data.summarization hypotheses "${out_dir}/generate.out" "${out_dir}/test.hypo" \
        --expect "$(wc -l < "$references")"
    "$PYTHON" -m r3f_experiments.rouge "${out_dir}/test.hypo" "$references" \
        "${lsum[@]}" --json "${out_dir}/rouge.json"
}

# Run instead of sourced: -h / --help prints the usage above; anything else is an error.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    handle_help "$0" "$@"
    print_usage "$0" >&2
    exit 2
fi
