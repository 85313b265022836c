#!/usr/bin/env bash
# Usage: utils/slurm.sh [options] [JOB=1:N] LOG_FILE COMMAND [ARGS...]
# The interface of utils/run.sh, running the jobs on a Slurm cluster: the N jobs are one array
# job submitted with "sbatch --wait", so this command returns when all have ended. JOB is
# replaced in LOG_FILE and ARGS as in utils/run.sh; each job writes its log (the command,
# its output, "# Ended (code STATUS)") like a local one. The batch script and Slurm's own
# output go to DIR/q/, where DIR is the log file's directory. Exits 1, naming the failed jobs'
# log files, if any job fails or never ran (and, where sacct is available, the Slurm state of
# the array's tasks that did not complete, e.g. TIMEOUT or OUT_OF_MEMORY). A training on
# several GPUs is one job: utils/slurm.sh --gpu 8 LOG torchrun --nproc_per_node 8 steps/...
#
# Options (each also as --opt=value):
#   --mem M            memory per job, e.g. 4G (sbatch --mem)
#   --gpu N            GPUs per job (sbatch --gres=gpu:N; 0: none)
#   --time T           time limit per job, e.g. 24:00:00 (sbatch --time)
#   --num-threads N    CPU cores per job (sbatch --cpus-per-task)
#   --max-jobs-run N   at most N jobs of the array at once (sbatch --array=1-N%M)
#   --help             this message
# An option given twice keeps its last value: with cuda_cmd="utils/slurm.sh --gpu 1",
# "$cuda_cmd --gpu 8 LOG ..." asks for 8 GPUs.
# Other sbatch settings (partition, account, ...) are read by sbatch from its environment,
# e.g. export SBATCH_PARTITION=gpu SBATCH_ACCOUNT=myproject.
set -u
me=$(basename "$0")
usage() { sed -n '2,/^set -u$/{/^set -u$/d;s/^# \{0,1\}//p}' "$0"; }
die() { echo "$me: $*" >&2; exit 1; }

# sbatch options by name, in the order first given; a repeated option keeps its last value, so
# that a recipe's "$cuda_cmd --gpu 8" overrides the --gpu 1 that cmd.sh's cuda_cmd holds.
declare -A sbatch_opt=()
sbatch_order=()
set_sbatch_opt() {  # NAME VALUE
  [ -n "${sbatch_opt[$1]+set}" ] || sbatch_order+=("$1")
  sbatch_opt[$1]=$2
}
max_jobs_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --mem|--gpu|--time|--num-threads|--max-jobs-run)
      [ $# -ge 2 ] || die "option $1 needs a value"
      opt=${1#--}; value=$2; shift 2 ;;
    --mem=*|--gpu=*|--time=*|--num-threads=*|--max-jobs-run=*)
      opt=${1%%=*}; opt=${opt#--}; value=${1#*=}; shift ;;
    --*) die "invalid option $1 (see --help)" ;;
    *) break ;;
  esac
  case "$opt" in
    mem) set_sbatch_opt mem "--mem=$value" ;;
    time) set_sbatch_opt time "--time=$value" ;;
    gpu)
      [[ $value =~ ^[0-9]+$ ]] || die "--gpu takes a number, got '$value'"
      if [ "$value" -eq 0 ]; then set_sbatch_opt gpu ""; else set_sbatch_opt gpu "--gres=gpu:$value"; fi ;;
    num-threads)
      [[ $value =~ ^[0-9]+$ ]] || die "--num-threads takes a number, got '$value'"
      set_sbatch_opt num-threads "--cpus-per-task=$value" ;;
    max-jobs-run)
      [[ $value =~ ^[0-9]+$ ]] || die "--max-jobs-run takes a number, got '$value'"
      max_jobs_run=$value ;;
  esac
done

sbatch_opts=()
for opt in ${sbatch_order[@]+"${sbatch_order[@]}"}; do
  [ -z "${sbatch_opt[$opt]}" ] || sbatch_opts+=("${sbatch_opt[$opt]}")
done

# shellcheck source=utils/job_common.sh
. "$(dirname "$0")/job_common.sh"
parse_job_range "${1:-}" && shift
[ $# -ge 2 ] || { usage >&2; exit 1; }
log_template=$1
shift
command -v sbatch > /dev/null || die "sbatch not found: is this a Slurm cluster? (use utils/run.sh to run locally)"

cmd=$(join_command "$@")

qdir=$(dirname "$log_template")/q
name=$(basename "$log_template" .log)
[ -n "$jobvar" ] && name=${name//$jobvar/array}
mkdir -p "$qdir" || die "cannot make $qdir"
script=$qdir/$name.sh
wrapper=$(cd "$(dirname "$0")" && pwd)/run_job.sh
{
  echo "#!/usr/bin/env bash"
  echo "# Written by utils/slurm.sh: job \$SLURM_ARRAY_TASK_ID of this array runs one command."
  printf 'cd %q || exit 1\n' "$PWD"
  echo "case \$SLURM_ARRAY_TASK_ID in"
  for ((id = first; id <= last; id++)); do
    printf '  %d) exec %q %q %q ;;\n' "$id" "$wrapper" "$(subst "$log_template" "$id")" "$(subst "$cmd" "$id")"
  done
  echo '  *) echo "no job $SLURM_ARRAY_TASK_ID in this array" >&2; exit 1 ;;'
  echo "esac"
} > "$script" || die "cannot write $script"
chmod +x "$script"

for ((id = first; id <= last; id++)); do
  rm -f "$(subst "$log_template" "$id")"
done
array="$first-$last"
[ "$max_jobs_run" -gt 0 ] && array+="%$max_jobs_run"
job_id=$(sbatch --wait --parsable --job-name="$name" --array="$array" --output="$qdir/$name.%a.out" \
  ${sbatch_opts[@]+"${sbatch_opts[@]}"} "$script")
sbatch_status=$?
job_id=${job_id%%;*}  # --parsable prints "id" or "id;cluster"

failed=()
for ((id = first; id <= last; id++)); do
  log=$(subst "$log_template" "$id")
  grep -q '^# Ended (code 0) at ' "$log" 2>/dev/null || failed+=("$log")
done
if [ ${#failed[@]} -gt 0 ]; then
  states=""
  if [ -n "$job_id" ] && command -v sacct > /dev/null; then  # why Slurm ended them: TIMEOUT, OUT_OF_MEMORY, ...
    states=$(sacct --noheader --parsable2 --allocations --jobs="$job_id" --format=JobID,State 2>/dev/null |
             awk -F'|' '$2 != "COMPLETED" {printf " %s %s", $1, $2}')
  fi
  echo "$me: ${#failed[@]} / $((last - first + 1)) jobs failed (sbatch exit status $sbatch_status), see ${failed[*]}" \
       "(Slurm's output: $qdir/$name.*.out${states:+; Slurm states:$states})" >&2
  exit 1
fi
exit 0
