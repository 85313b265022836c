# Sourced by every recipe script, as Kaldi's path.sh: puts the project's tools on PATH and runs
# everything inside the project's virtual environment (.venv/, made by install.sh).
DROPCLASS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DROPCLASS_ROOT
if [ -f "$DROPCLASS_ROOT/.venv/bin/activate" ]; then
  # shellcheck disable=SC1091
  . "$DROPCLASS_ROOT/.venv/bin/activate"
else
  echo "$DROPCLASS_ROOT/.venv is missing: run 'bash install.sh' first" >&2
  return 1 2>/dev/null || exit 1
fi
export PATH="$DROPCLASS_ROOT/utils:$DROPCLASS_ROOT/steps:$DROPCLASS_ROOT/local:$PATH"
export PYTHONPATH="$DROPCLASS_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export LC_ALL=C
export PYTHONUNBUFFERED=1
