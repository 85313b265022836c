#!/usr/bin/env bash
# Runs the test suite inside .venv/ (made by install.sh). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh
exec python -m pytest -n "${NJ:-2}" "$@"
