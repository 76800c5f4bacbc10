#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"` for the quick unit tests only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "${ROOT}/scripts/setup.sh"
cd "${ROOT}"
exec "${PYTHON:-python3}" -m pytest -ra "$@"
