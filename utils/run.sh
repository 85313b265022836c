#!/usr/bin/env bash
# Usage: utils/run.sh [options] [JOB=1:N] LOG_FILE COMMAND [ARGS...]
# Runs a command, or N copies of it in parallel, on this machine, as Kaldi's run.pl.
# With JOB=1:N (any variable name, e.g. TASK=2:5, or JOB=3 for one job), each occurrence of
# JOB in LOG_FILE and in the arguments is replaced by the job number 1..N. Each job's output
# goes to its log file, with the command at the top and "# Ended (code STATUS)" at the end.
# Arguments without whitespace are passed to bash as they are, so an escaped \| or \> is a
# pipe or a redirection; arguments with whitespace are quoted. Pipelines fail if any part does.
# Exits 1, naming the failed jobs' log files, if any job fails.
#
# Options:
#   --max-jobs-run N   run at most N jobs at a time (default: all at once)
#   --mem M, --gpu N, --time T, --num-threads N
#                      accepted and ignored, so that a recipe can switch between utils/run.sh
#                      and utils/slurm.sh (see cmd.sh) without changing its commands
#   --help             this message
set -u
me=$(basename "$0")
usage() { sed -n '2,/^set -u$/{/^set -u$/d;s/^# \{0,1\}//p}' "$0"; }
die() { echo "$me: $*" >&2; exit 1; }

max_jobs_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --max-jobs-run) [ $# -ge 2 ] || die "option $1 needs a value"; max_jobs_run=$2; shift 2 ;;
    --max-jobs-run=*) max_jobs_run=${1#*=}; shift ;;
    --mem|--gpu|--time|--num-threads) [ $# -ge 2 ] || die "option $1 needs a value"; shift 2 ;;
    --mem=*|--gpu=*|--time=*|--num-threads=*) shift ;;
    --*) die "invalid option $1 (see --help)" ;;
    *) break ;;
  esac
done
[[ $max_jobs_run =~ ^[0-9]+$ ]] || die "--max-jobs-run takes a number, got '$max_jobs_run'"

# shellcheck source=utils/job_common.sh
. "$(dirname "$0")/job_common.sh"
parse_job_range "${1:-}" && shift
[ $# -ge 2 ] || { usage >&2; exit 1; }
log_template=$1
shift

cmd=$(join_command "$@")

wrapper=$(dirname "$0")/run_job.sh
pids=()
trap 'kill ${pids[*]} 2>/dev/null; wait; exit 130' INT TERM

for ((id = first; id <= last; id++)); do
  if [ "$max_jobs_run" -gt 0 ]; then
    while [ "$(jobs -rp | wc -l)" -ge "$max_jobs_run" ]; do sleep 0.1; done
  fi
  "$wrapper" "$(subst "$log_template" "$id")" "$(subst "$cmd" "$id")" &
  pids[id]=$!
done

failed=()
for ((id = first; id <= last; id++)); do
  wait "${pids[id]}" || failed+=("$(subst "$log_template" "$id")")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "$me: ${#failed[@]} / $((last - first + 1)) jobs failed, see ${failed[*]}" >&2
  exit 1
fi
exit 0
