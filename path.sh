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
# One BLAS/OpenMP thread per process, as Kaldi's binaries: parallelism comes from --nj jobs and
# DataLoader workers. Several threads per process oversubscribe the cores as soon as anything
# else runs (measured: embedding extraction 25x slower with 2 threads on a busy 2-core machine).
# Raise it for CPU training on a machine with idle cores: OMP_NUM_THREADS=8 bash run.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export MKL_NUM_THREADS=${MKL_NUM_THREADS:-$OMP_NUM_THREADS}
