# Shared by scripts/summarization/<dataset>/{prepare,train,evaluate}.sh; source it after
# setting DATASET (and, for train/evaluate, the hyper-parameter block of the calling script).

# ---- hyper-parameters shared by the three datasets: paper Table 8 ------------------------------
LR=3e-5
ADAM_BETAS='(0.9,0.98)'
ADAM_EPS=1e-8
CLIP_NORM=0.1
DROPOUT=0.1
WEIGHT_DECAY=0.01
EPS=1e-5                             # sigma
NOISE_TYPE="${NOISE_TYPE:-uniform}"  # U or N
LABEL_SMOOTHING=0.1                  # BART's summarization recipe (not stated in the paper)
UPDATE_FREQ="${UPDATE_FREQ:-1}"      # not in the paper; BART's README used 4 with 8 GPUs
# --------------------------------------------------------------------------------------------------
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "${ROOT}/scripts/recipe_common.sh"
export PYTHONPATH="${ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
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
encoder.json, vocab.bpe) and BART_DICT (dict.txt of bart.large) to local copies (README: Summarization)."
    done
}

# summarization_prepare [JSONL_DIR] [OUT_DIR]: JSONL -> raw text, BPE ids, fairseq binaries.
summarization_prepare() {
    local jsonl_dir="${1:-${DATA_ROOT}/${DATASET}/jsonl}" out_dir="${2:-${DATA_ROOT}/${DATASET}}"
    check_bpe_files
    if [[ ! -e "${jsonl_dir}" ]]; then
        echo "[prepare] ${jsonl_dir} missing: trying the datasets hub copy of ${DATASET}" >&2
        "$PYTHON" -m fairseq_r3f.summarization_data download "$DATASET" "$jsonl_dir" --variant "$VARIANT"
    fi
    "$PYTHON" -m fairseq_r3f.summarization_data prepare "$DATASET" "$jsonl_dir" "$out_dir" \
        --variant "$VARIANT" --encoder-json "$BPE_ENCODER" --vocab-bpe "$BPE_VOCAB" --dict "$BART_DICT" \
        --workers "${WORKERS:-$(nproc 2>/dev/null || echo 1)}"
}

# summarization_train METHOD [SEED] [SAVE_DIR] [-- EXTRA]: fairseq-train with the block's settings.
summarization_train() {
    [[ $# -ge 1 ]] || die "usage: train.sh METHOD [SEED] [SAVE_DIR] [-- EXTRA fairseq-train FLAGS] (METHOD: std r3f)"
    local method=$1; shift
    parse_run_args "$@"
    local data="${DATA:-${DATA_ROOT}/${DATASET}/bin}"
    [[ -f "${data}/dict.source.txt" ]] || die "DATA=${data} holds no dict.source.txt: run prepare.sh first"
    SAVE_DIR="${SAVE_DIR:-checkpoints/${DATASET}/${method}/seed${SEED}}"
    local bart="${BART-bart.large/model.pt}" arch="${ARCH:-bart_large}"
    resolve_precision
    local criterion
    case "$method" in
        std) criterion=(--criterion label_smoothed_cross_entropy) ;;
        r3f) criterion=(--criterion label_smoothed_cross_entropy_r3f --r3f-lambda "$R3F_LAMBDA"
                        --eps "$EPS" --noise-type "$NOISE_TYPE") ;;
        *) die "unknown METHOD '$method' (std r3f)" ;;
    esac
    local restore=()
    if [[ -n "$bart" ]]; then
        [[ -f "$bart" ]] || die "BART=$bart: no such file (pre-trained bart.large/model.pt; BART= trains from scratch)"
        restore=(--restore-file "$bart" --reset-optimizer --reset-dataloader --reset-meters)
    fi
    local run=(exec)
    [[ -n "${DRY_RUN:-}" ]] && run=(printf '%q ')
    [[ -z "${DRY_RUN:-}" ]] && mkdir -p "$SAVE_DIR"
    "${run[@]}" "$(fairseq_tool fairseq-train)" "$data" --user-dir "${ROOT}/fairseq_r3f" "${restore[@]}" \
        --task translation --source-lang source --target-lang target --truncate-source \
        --max-source-positions 1024 --max-target-positions 1024 \
        --arch "$arch" --layernorm-embedding --share-all-embeddings --share-decoder-input-output-embed \
        "${criterion[@]}" --label-smoothing "$LABEL_SMOOTHING" \
        --dropout "$DROPOUT" --attention-dropout "$DROPOUT" --weight-decay "$WEIGHT_DECAY" \
        --optimizer adam --adam-betas "$ADAM_BETAS" --adam-eps "$ADAM_EPS" --clip-norm "$CLIP_NORM" \
        --lr-scheduler polynomial_decay --lr "$LR" --warmup-updates "$WARMUP_UPDATES" \
        --total-num-update "$MAX_UPDATE" --max-update "$MAX_UPDATE" \
        --max-tokens "$MAX_TOKENS" --update-freq "$UPDATE_FREQ" --required-batch-size-multiple 1 \
        --seed "$SEED" --save-dir "$SAVE_DIR" --no-epoch-checkpoints --find-unused-parameters \
        --log-format json --log-interval 100 $PRECISION "${EXTRA[@]}"
    [[ -n "${DRY_RUN:-}" ]] && echo
}

# summarization_evaluate CHECKPOINT [OUT_DIR]: fairseq-generate on the test split, then ROUGE.
# --required-batch-size-multiple 1: with fairseq's default of 8, batch_by_size silently drops
# a last batch smaller than 8 sentences, and those test examples would never be summarised.
summarization_evaluate() {
    [[ $# -ge 1 ]] || die "usage: evaluate.sh CHECKPOINT [OUT_DIR] (env DATA: the prepared folder)"
    local checkpoint=$1 prepared="${DATA_DIR:-${DATA_ROOT}/${DATASET}}"
    local out_dir="${2:-$(dirname "$checkpoint")/eval}"
    [[ -f "$checkpoint" ]] || die "no checkpoint $checkpoint"
    local references="${prepared}/raw/test.target"
    [[ -f "$references" && -f "${prepared}/bin/dict.source.txt" ]] \
        || die "${prepared} is not a folder written by prepare.sh (needs raw/test.target and bin/)"
    check_bpe_files
    mkdir -p "$out_dir"
    "$(fairseq_tool fairseq-generate)" "${prepared}/bin" --user-dir "${ROOT}/fairseq_r3f" \
        --path "$checkpoint" --task translation --source-lang source --target-lang target \
        --truncate-source --max-source-positions 1024 --max-target-positions 1024 --gen-subset test \
        --beam "$BEAM" --lenpen "$LENPEN" --max-len-a 0 --max-len-b "$MAX_LEN_B" --min-len "$MIN_LEN" \
        --no-repeat-ngram-size "$NO_REPEAT_NGRAM_SIZE" --batch-size "${GEN_BATCH_SIZE:-32}" \
        --required-batch-size-multiple 1 \
        --bpe gpt2 --gpt2-encoder-json "$BPE_ENCODER" --gpt2-vocab-bpe "$BPE_VOCAB" \
        ${GENERATE_FLAGS:-} > "${out_dir}/generate.out"
    "$PYTHON" -m fairseq_r3f.summarization_data hypotheses "${out_dir}/generate.out" "${out_dir}/test.hypo" \
        --expect "$(wc -l < "$references")"
    "$PYTHON" "${ROOT}/scripts/summarization/score.py" "${out_dir}/test.hypo" "$references" \
        ${LSUM:+--lsum} --json "${out_dir}/rouge.json"
}
