#!/usr/bin/env bash
# Prepare GLUE tasks for `fairseq-train --task sentence_prediction` as RoBERTa expects them:
# read the official TSV files, GPT-2 BPE-encode, binarise with RoBERTa's dictionary.
#
#   bash scripts/glue/prepare.sh [--wordpiece CONVERTED_DIR] TASK|all [GLUE_DIR] [OUT_DIR]
#
#   --wordpiece  for a model converted from Hugging Face BERT (python -m r3f_experiments.convert_hf
#             SRC CONVERTED_DIR): WordPiece-encode with CONVERTED_DIR's tokenizer and binarise with
#             CONVERTED_DIR/dict.txt instead of RoBERTa's GPT-2 BPE (BPE_* and ROBERTA_DICT unused).
#             Fine-tune such a model without --separator-token: <s> A </s> B </s> is BERT's
#             [CLS] A [SEP] B [SEP].
#   TASK      MNLI QQP QNLI MRPC RTE SST-2 CoLA STS-B WNLI (case-insensitive); all = the first eight
#   GLUE_DIR  GLUE data folder holding TASK/train.tsv ... (as GLUE's download_glue_data.py writes it).
#             Omitted (or "" or -): downloaded into OUT_DIR/glue_data from GLUE_URL (below).
#   OUT_DIR   default glue_bin (what scripts/glue/train.sh reads). Writes per task:
#               OUT_DIR/TASK-bin/{input0,input1,label}  the data-bin (fairseq-train DATA)
#               OUT_DIR/raw/TASK/   parsed text: {split}.input0/.input1/.label, {split}.line (the
#                                   rows' lines in the source file), sources.tsv, skipped.tsv
#               OUT_DIR/bpe/TASK/   GPT-2 BPE ids of the inputs
#             A folder there that prepare.sh did not write (nor download, for OUT_DIR/glue_data/TASK)
#             is never deleted or written into: the script names it and stops before any work.
#
# Splits: train, valid (dev.tsv); MNLI: valid = dev_matched, valid1 = dev_mismatched
# (fairseq-train --valid-subset valid,valid1); test files, when present, become test (and MNLI's
# test1 = test_mismatched), inputs only. STS-B (regression): label/{train,valid}.label hold the
# score / 5 as text, not binarised (train with --regression-target --num-classes 1).
#
# Rows the parser cannot use (wrong column count, empty field, unknown label, bad UTF-8) are
# skipped and listed with their line numbers (printed, and in OUT_DIR/raw/TASK/skipped.tsv). A
# row whose sentence encodes to no token (e.g. accents alone, which WordPiece strips) stops the
# preparation, named by its source file and line.
#
# Environment: BPE_ENCODER, BPE_VOCAB, ROBERTA_DICT = RoBERTa's encoder.json, vocab.bpe, dict.txt
# (unset: downloaded from GPT2_BPE_URL into OUT_DIR/gpt2_bpe); PYTHON; WORKERS; GLUE_URL; MRPC_URL.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../recipe_common.sh"
handle_help "$0" "$@"

# ---- settings (each can be overridden from the environment) --------------------------------
PYTHON="${PYTHON:-python3}"
WORKERS="${WORKERS:-$(nproc 2>/dev/null || echo 1)}"   # BPE and fairseq-preprocess processes
# GLUE's data as served for GLUE's download script (https://gist.github.com/W4ngatang/60c2bdb54d156a41194446737ce03e2e,
# the script fairseq's examples/roberta/preprocess_GLUE_tasks.sh and jiant point to):
# GLUE_URL/{CoLA,SST-2,QQP-clean,STS-B,MNLI,QNLIv2,RTE,WNLI}.zip. MRPC is not hosted by GLUE: the
# MSR Paraphrase Corpus comes from SentEval's copy, split into train/dev by GLUE_URL/mrpc_dev_ids.tsv.
GLUE_URL="${GLUE_URL:-https://dl.fbaipublicfiles.com/glue/data}"
MRPC_URL="${MRPC_URL:-https://dl.fbaipublicfiles.com/senteval/senteval_data}"
# RoBERTa's GPT-2 BPE (encoder.json, vocab.bpe) and fairseq dictionary (dict.txt), as in
# fairseq's examples/roberta/preprocess_GLUE_tasks.sh. Unset: downloaded into OUT_DIR/gpt2_bpe.
GPT2_BPE_URL="${GPT2_BPE_URL:-https://dl.fbaipublicfiles.com/fairseq/gpt2_bpe}"
BPE_ENCODER="${BPE_ENCODER:-}"
BPE_VOCAB="${BPE_VOCAB:-}"
ROBERTA_DICT="${ROBERTA_DICT:-}"
ALL_TASKS=(MNLI QQP QNLI MRPC RTE SST-2 CoLA STS-B)
declare -A GLUE_ZIP=([CoLA]=CoLA.zip [SST-2]=SST-2.zip [QQP]=QQP-clean.zip [STS-B]=STS-B.zip
                     [MNLI]=MNLI.zip [QNLI]=QNLIv2.zip [RTE]=RTE.zip [WNLI]=WNLI.zip)
# ----------------------------------------------------------------------------------------------

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2; exit 2; }
die() { echo "error: $*" >&2; exit 1; }

WORDPIECE=""
if [[ "${1:-}" == --wordpiece ]]; then
    [[ $# -ge 2 ]] || usage
    WORDPIECE="$2"; shift 2
    [[ -f "${WORDPIECE}/dict.txt" ]] || die "--wordpiece ${WORDPIECE}: no dict.txt there (the folder must be the output of python -m r3f_experiments.convert_hf)"
fi
[[ $# -ge 1 && $# -le 3 ]] || usage
GLUE_DIR="${2:-}"
[[ "$GLUE_DIR" == "-" ]] && GLUE_DIR=""
OUT_DIR="${3:-glue_bin}"

canonical() {
    case "${1,,}" in
        mnli) echo MNLI ;; qqp) echo QQP ;; qnli) echo QNLI ;; mrpc) echo MRPC ;; rte) echo RTE ;;
        wnli) echo WNLI ;; sst-2|sst2|sst) echo SST-2 ;; cola) echo CoLA ;; sts-b|stsb|sts) echo STS-B ;;
        *) return 1 ;;
    esac
}
if [[ "${1,,}" == all ]]; then
    TASKS=("${ALL_TASKS[@]}")
else
    task="$(canonical "$1")" || die "unknown TASK '$1' (MNLI QQP QNLI MRPC RTE SST-2 CoLA STS-B WNLI, or all)"
    TASKS=("$task")
fi
if [[ -n "$GLUE_DIR" && ! -d "$GLUE_DIR" ]]; then
    die "GLUE_DIR '$GLUE_DIR' is not a folder"
fi

# What this script writes carries MARKER; it rewrites a folder only if it holds one, and never a
# folder that is (or holds, or lies inside) the task's source files.
MARKER=.written-by-prepare.sh
only_bpe_files() {  # FOLDER: holds files named as the BPE step writes them ({split}.input0/1), and nothing else
    local entry any=1
    [[ -d "$1" && ! -L "$1" ]] || return 1
    for entry in "$1"/* "$1"/.[!.]*; do
        [[ -e "$entry" || -L "$entry" ]] || continue
        [[ -f "$entry" && ! -L "$entry" && "${entry##*/}" =~ ^(train|valid[0-9]*|test[0-9]*)\.input[01]$ ]] || return 1
        any=0
    done
    return $any
}
refuse_to_overwrite() {  # SOURCE TASK RAW BIN BPE
    local source=$1 task=$2 raw=$3 bin=$4 bpe=$5 folder src
    src="$(realpath -m "${source}/${task}")"
    [[ -d "$src" ]] || src="$(realpath -m "$source")"
    for folder in "$raw" "$bin" "$bpe"; do
        local out; out="$(realpath -m "$folder")"
        if [[ "$out" == "$src" || "$src" == "$out"/* || "$out" == "$src"/* ]]; then
            die "${task}: the output folder ${folder} is, holds or lies inside the source folder ${src};
prepare.sh rewrites its outputs, so choose an OUT_DIR apart from GLUE_DIR."
        fi
        [[ -e "$folder" || -L "$folder" ]] || continue
        [[ -e "${folder}/${MARKER}" ]] && continue
        # folders written before the marker existed: raw/TASK holds skipped.tsv, TASK-bin input0/dict.txt,
        # bpe/TASK only the BPE files
        [[ "$folder" == "$raw" && -e "${folder}/skipped.tsv" ]] && continue
        [[ "$folder" == "$bin" && -e "${folder}/input0/dict.txt" ]] && continue
        [[ "$folder" == "$bpe" ]] && only_bpe_files "$folder" && continue
        die "${task}: ${folder} exists and was not written by prepare.sh; remove it yourself or choose another OUT_DIR."
    done
}

# Download mode: OUT_DIR/glue_data/TASK is the script's only with the marker .downloaded (see download_task).
refuse_foreign_download() {  # TASK DEST_ROOT
    local task=$1 root=$2
    [[ -f "${root}/${task}/.downloaded" ]] && return 0
    if [[ -e "${root}/${task}" || -L "${root}/${task}" ]]; then
        die "${root}/${task} exists and was not downloaded by prepare.sh (it holds no .downloaded); it is left as it is.
To prepare the GLUE files in it, pass its parent as GLUE_DIR: bash scripts/glue/prepare.sh ${task} ${root} ${OUT_DIR}
To download ${task} instead, move ${root}/${task} elsewhere first."
    fi
}
# every refusal before any work (downloads included)
for TASK in "${TASKS[@]}"; do
    SOURCE="${GLUE_DIR:-${OUT_DIR}/glue_data}"
    [[ -n "$GLUE_DIR" ]] || refuse_foreign_download "$TASK" "$SOURCE"
    refuse_to_overwrite "$SOURCE" "$TASK" "${OUT_DIR}/raw/${TASK}" "${OUT_DIR}/${TASK}-bin" "${OUT_DIR}/bpe/${TASK}"
done
mkdir -p "$OUT_DIR"

# fetch URL DEST: download to DEST (via DEST.part, so a failed download leaves nothing behind)
fetch() {
    local url=$1 dest=$2
    mkdir -p "$(dirname "$dest")"
    echo "[prepare] downloading $url" >&2
    if command -v curl > /dev/null; then
        curl -fsSL --retry 2 --connect-timeout 20 -o "$dest.part" "$url"
    elif command -v wget > /dev/null; then
        wget -q --tries 2 --timeout 20 -O "$dest.part" "$url"
    else
        "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
            "$url" "$dest.part"
    fi || { rm -f "$dest.part"; return 1; }
    mv "$dest.part" "$dest"
}

# ---- RoBERTa's BPE files: from the environment, else downloaded once -------------------------
bpe_file() {  # VAR NAME: echo the path in $VAR, or download NAME into OUT_DIR/gpt2_bpe
    local var=$1 name=$2 path=${!1}
    if [[ -n "$path" ]]; then
        [[ -f "$path" ]] || die "$var=$path: no such file"
    else
        path="${OUT_DIR}/gpt2_bpe/${name}"
        if [[ ! -f "$path" ]]; then
            fetch "${GPT2_BPE_URL}/${name}" "$path" || die "could not download ${GPT2_BPE_URL}/${name}.
Set BPE_ENCODER, BPE_VOCAB and ROBERTA_DICT to local copies of RoBERTa's encoder.json, vocab.bpe and
dict.txt (from ${GPT2_BPE_URL}/), e.g. BPE_ENCODER=/data/gpt2_bpe/encoder.json."
        fi
    fi
    echo "$path"
}
if [[ -n "$WORDPIECE" ]]; then
    ENCODING=(--wordpiece "$WORDPIECE")
    ENCODING_NAME=WordPiece
else
    BPE_ENCODER="$(bpe_file BPE_ENCODER encoder.json)"
    BPE_VOCAB="$(bpe_file BPE_VOCAB vocab.bpe)"
    ROBERTA_DICT="$(bpe_file ROBERTA_DICT dict.txt)"
    ENCODING=(--encoder-json "$BPE_ENCODER" --vocab-bpe "$BPE_VOCAB" --dict "$ROBERTA_DICT")
    ENCODING_NAME="GPT-2 BPE"
fi

# ---- GLUE data: the folder given, else downloaded -----------------------------------------
download_failed() {
    die "could not download $1.
Download GLUE yourself (GLUE's download_glue_data.py, see the comment at the top of this script)
and pass its folder: bash scripts/glue/prepare.sh TASK GLUE_DIR [OUT_DIR]"
}

# DEST_ROOT/TASK is made in a folder of its own (DOWNLOAD_TMP, removed on exit) and moved into place
# whole, with the marker .downloaded; a DEST_ROOT/TASK without that marker is not this script's, and
# is neither deleted nor replaced.
DOWNLOAD_TMP=""
trap '[[ -z "$DOWNLOAD_TMP" ]] || rm -rf "$DOWNLOAD_TMP"' EXIT
download_task() {  # TASK DEST_ROOT: DEST_ROOT/TASK/{train,dev,...}.tsv
    local task=$1 root=$2 found
    [[ -f "${root}/${task}/.downloaded" ]] && return 0
    refuse_foreign_download "$task" "$root"
    mkdir -p "$root"
    DOWNLOAD_TMP="$(mktemp -d "${root}/.download-${task}.XXXXXX")"
    local tmp=$DOWNLOAD_TMP
    if [[ "$task" == MRPC ]]; then
        for f in msr_paraphrase_train.txt msr_paraphrase_test.txt; do
            fetch "${MRPC_URL}/${f}" "${tmp}/${f}" || download_failed "${MRPC_URL}/${f}"
        done
        fetch "${GLUE_URL}/mrpc_dev_ids.tsv" "${tmp}/mrpc_dev_ids.tsv" || download_failed "${GLUE_URL}/mrpc_dev_ids.tsv"
        "$PYTHON" -m r3f_experiments.data.mrpc "${tmp}/msr_paraphrase_train.txt" \
            "${tmp}/msr_paraphrase_test.txt" "${tmp}/mrpc_dev_ids.tsv" "${tmp}/${task}" > /dev/null
    else
        local zip="${GLUE_ZIP[$task]}"
        fetch "${GLUE_URL}/${zip}" "${tmp}/${zip}" || download_failed "${GLUE_URL}/${zip}"
        "$PYTHON" -m zipfile -e "${tmp}/${zip}" "${tmp}/x"
        found="$(find "${tmp}/x" -name train.tsv -print -quit)"
        [[ -n "$found" ]] || die "${GLUE_URL}/${zip} holds no train.tsv"
        mv "$(dirname "$found")" "${tmp}/${task}"
    fi
    touch "${tmp}/${task}/.downloaded"
    # -T: never into a DEST_ROOT/TASK that appeared meanwhile
    mv -T "${tmp}/${task}" "${root}/${task}" || die "could not move the download into ${root}/${task}"
    rm -rf "$tmp"
    DOWNLOAD_TMP=""
}

SUMMARY=()
for TASK in "${TASKS[@]}"; do
    SOURCE="$GLUE_DIR"
    if [[ -z "$SOURCE" ]]; then
        SOURCE="${OUT_DIR}/glue_data"
        download_task "$TASK" "$SOURCE"
    fi
    RAW="${OUT_DIR}/raw/${TASK}"
    BIN="${OUT_DIR}/${TASK}-bin"
    BPE="${OUT_DIR}/bpe/${TASK}"
    refuse_to_overwrite "$SOURCE" "$TASK" "$RAW" "$BIN" "$BPE"
    echo "[prepare] ${TASK}: parse ${SOURCE} -> ${RAW}" >&2
    rm -rf "$RAW" "$BIN" "$BPE"
    mkdir -p "$RAW" "$BIN" "$BPE"
    touch "${RAW}/${MARKER}" "${BIN}/${MARKER}" "${BPE}/${MARKER}"
    "$PYTHON" -m r3f_experiments.data.glue "$TASK" "$SOURCE" "$RAW"
    LOG="${RAW}/binarize.log"
    echo "[prepare] ${TASK}: ${ENCODING_NAME} + fairseq-preprocess -> ${BIN} (log: ${LOG})" >&2
    if ! "$PYTHON" -m r3f_experiments.data.glue_binarize "$TASK" "$RAW" "$BIN" --bpe-dir "$BPE" \
            "${ENCODING[@]}" --workers "$WORKERS" > "$LOG" 2>&1; then
        tail -n 20 "$LOG" >&2
        die "${TASK}: BPE encoding / binarisation failed (full log: ${LOG})"
    fi
    SUMMARY+=("$(grep "^${TASK}: " "$LOG" | tail -n 1)")
done
echo "[prepare] done:"
printf '%s\n' "${SUMMARY[@]}"
