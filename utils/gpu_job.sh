# Sourced by the recipes' run.sh, after cmd.sh.
# gpu_job N LOG COMMAND...: COMMAND as one $cuda_cmd job with N GPUs (a training, a DropAdapt run),
# its output in LOG; when it fails, the end of LOG (the step's error, e.g. the configuration keys
# that changed) is shown too, and the function exits 1.
gpu_job() {
  local gpus=$1 log=$2
  shift 2
  # the request is the runner's to honour: utils/run.sh ignores it (the job uses this machine's devices)
  echo "run.sh: one job through $cuda_cmd --gpu $gpus, log in $log"
  $cuda_cmd --gpu "$gpus" "$log" "$@" || { tail -n 3 "$log" >&2; exit 1; }
}
