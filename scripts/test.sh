#!/usr/bin/env bash
# Set up (idempotent) and run the test suite.
#
#   bash scripts/test.sh            the full suite (what CI runs): tests/{unit,plugin,e2e,experiments}
#   bash scripts/test.sh --quick    unit and plugin tests only (the method's math and the plugin
#                                   in-process through fairseq's Trainer; no fairseq subprocess)
#   bash scripts/test.sh tests/e2e -k hydra    other arguments go to pytest
#
# Tests run in PYTEST_WORKERS (default 2) pytest-xdist processes: most of the suite's time is
# spent starting single-threaded fairseq tools, so two workers keep two cores busy
# (`bash scripts/test.sh -n 0` runs in one process). -h / --help prints this text (pytest's own
# help: python -m pytest --help).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "${ROOT}/scripts/recipe_common.sh"
handle_help "$0" "$@"
bash "${ROOT}/scripts/setup.sh"
cd "${ROOT}"
ARGS=("$@")
if [[ "${1:-}" == --quick ]]; then
    ARGS=(tests/unit tests/plugin "${@:2}")
fi
exec "${PYTHON:-python3}" -m pytest -ra -n "${PYTEST_WORKERS:-2}" "${ARGS[@]}"
