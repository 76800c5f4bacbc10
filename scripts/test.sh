#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"` for the quick unit tests only.
# Tests run in PYTEST_WORKERS (default 2) pytest-xdist processes: most of the suite's time is
# spent starting single-threaded fairseq tools, so two workers keep two cores busy
# (`bash scripts/test.sh -n 0` runs in one process).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "${ROOT}/scripts/setup.sh"
cd "${ROOT}"
exec "${PYTHON:-python3}" -m pytest -ra -n "${PYTEST_WORKERS:-2}" "$@"
