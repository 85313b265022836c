#!/usr/bin/env bash
# Usage: utils/run_job.sh LOG_FILE COMMAND_STRING
# Runs one job of utils/run.sh or utils/slurm.sh: COMMAND_STRING in bash (with pipefail),
# its stdout and stderr in LOG_FILE between a header (the command, the start time) and a
# footer ("# Accounting: time=SECONDS threads=1" and "# Ended (code STATUS) at DATE", the
# line that utils/slurm.sh reads back). Exits with the command's status.
# A TERM or INT signal is passed on to the command, and its status logged.
usage() { sed -n '2,7s/^# \{0,1\}//p' "$0"; }
case "${1:-}" in --help|-h) usage; exit 0 ;; esac
[ $# -eq 2 ] || { usage >&2; exit 1; }
log=$1
cmd=$2
mkdir -p "$(dirname "$log")" || exit 1
{
  echo "# $cmd"
  echo "# Started at $(date)"
  echo "#"
} > "$log" || exit 1
start=$SECONDS
bash -o pipefail -c "$cmd" < /dev/null >> "$log" 2>&1 &
child=$!
trap 'kill -TERM $child 2>/dev/null' TERM INT
wait $child
status=$?
if kill -0 $child 2>/dev/null; then  # interrupted: wait for the command to end after the signal
  wait $child
  status=$?
fi
{
  echo "# Accounting: time=$((SECONDS - start)) threads=1"
  echo "# Ended (code $status) at $(date)"
} >> "$log"
exit $status
