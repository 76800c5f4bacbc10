#!/usr/bin/env bash
# XNLI for zero-shot evaluation of XLM-R (paper Table 3): English MultiNLI train, XNLI dev
# in 15 languages, encoded with XLM-R's sentencepiece model and binarised with its dictionary.
#
#   bash scripts/xnli/prepare.sh [XNLI_DIR] [TRAIN_FILE] [XLMR_DIR] [OUT]
#
#   XNLI_DIR    folder with xnli.dev.tsv (XNLI-1.0)            default: downloaded to data/XNLI-1.0
#   TRAIN_FILE  XNLI-MT-1.0/multinli/multinli.train.en.tsv     default: downloaded to data/XNLI-MT-1.0
#   XLMR_DIR    folder with sentencepiece.bpe.model, dict.txt   default: downloaded to xlmr.large
#   OUT         default xnli_bin (input0/ input1/ label/ languages.txt)
# Downloads need dl.fbaipublicfiles.com; where it is unreachable, download elsewhere and pass folders.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../recipe_common.sh"
handle_help "$0" "$@"

# ---- settings ---------------------------------------------------------------------------------
XNLI_URL=https://dl.fbaipublicfiles.com/XNLI/XNLI-1.0.zip
XNLI_MT_URL=https://dl.fbaipublicfiles.com/XNLI/XNLI-MT-1.0.zip
XLMR_URL=https://dl.fbaipublicfiles.com/fairseq/models/xlmr.large.tar.gz
LANGUAGES="${LANGUAGES:-en,fr,es,de,el,bg,ru,tr,ar,vi,th,zh,hi,sw,ur}"   # Table 3's order
SPLIT="${SPLIT:-dev}"                                                     # dev or test
# -------------------------------------------------------------------------------------------------

XNLI_DIR="${1:-data/XNLI-1.0}"
TRAIN_FILE="${2:-data/XNLI-MT-1.0/multinli/multinli.train.en.tsv}"
XLMR_DIR="${3:-xlmr.large}"
OUT="${4:-xnli_bin}"
PYTHON="${PYTHON:-python3}"

fetch() {  # fetch URL DEST_DIR: download and unpack, or explain how to do it by hand
    local url=$1 dest=$2
    mkdir -p "$dest"
    echo "[xnli] downloading ${url}"
    local archive="${dest}/$(basename "$url")"
    curl -fsSL -o "$archive" "$url" || {
        echo "error: could not download ${url}; download it elsewhere and pass the folder as an argument" >&2
        exit 2
    }
    case "$archive" in
        *.zip) (cd "$dest" && unzip -q "$(basename "$archive")") ;;
        *.tar.gz) tar -xzf "$archive" -C "$dest" --strip-components 1 ;;
    esac
}

[[ -f "${XNLI_DIR}/xnli.${SPLIT}.tsv" ]] || { [[ $# -lt 1 ]] && fetch "$XNLI_URL" data; }
[[ -f "$TRAIN_FILE" ]] || { [[ $# -lt 2 ]] && fetch "$XNLI_MT_URL" data; }
[[ -f "${XLMR_DIR}/sentencepiece.bpe.model" ]] || { [[ $# -lt 3 ]] && fetch "$XLMR_URL" "$XLMR_DIR"; }
for f in "${XNLI_DIR}/xnli.${SPLIT}.tsv" "$TRAIN_FILE" "${XLMR_DIR}/sentencepiece.bpe.model" "${XLMR_DIR}/dict.txt"; do
    [[ -f "$f" ]] || { echo "error: ${f} not found" >&2; exit 2; }
done

"$PYTHON" -m r3f_experiments.data.xnli prepare --xnli-dir "$XNLI_DIR" --train-file "$TRAIN_FILE" \
    --spm-model "${XLMR_DIR}/sentencepiece.bpe.model" --dict "${XLMR_DIR}/dict.txt" \
    --out "$OUT" --split "$SPLIT" --languages "$LANGUAGES"
echo "[xnli] binarised data in ${OUT}"
