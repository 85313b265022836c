#!/usr/bin/env bash
# One-command set-up: makes the virtual environment .venv/ in the project root and installs the
# project (editable) with its test tools. path.sh activates .venv/, so every recipe script runs in it.
#   bash install.sh            # PYTHON=python3.11 bash install.sh to choose the interpreter
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first, pinned: on this kind of machine pip takes the local CPU wheel of 2.13.0.
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/python -c 'import torch, kaldiio, lhotse, dropclass_lib; print("installed: torch", torch.__version__, "lhotse", lhotse.__version__)'
