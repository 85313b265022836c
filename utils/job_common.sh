# Shared by utils/run.sh and utils/slurm.sh (sourced, not run): the job-range argument, the
# command line as one shell string, and the substitution of the job number.

jobvar="" first=1 last=1

# parse_job_range ARG: if ARG is JOB=A:B (or JOB=A), set jobvar, first, last and return 0.
parse_job_range() {
  [[ $1 =~ ^([A-Za-z_][A-Za-z0-9_]*)=([0-9]+)(:([0-9]+))?$ ]] || return 1
  jobvar=${BASH_REMATCH[1]}
  first=$((10#${BASH_REMATCH[2]}))
  last=$((10#${BASH_REMATCH[4]:-${BASH_REMATCH[2]}}))
  if [ "$first" -gt "$last" ]; then
    echo "$me: empty job range $1" >&2
    exit 1
  fi
}

# join_command ARGS...: one string for bash -c, as Kaldi's run.pl builds it: an argument
# without whitespace is taken as it is (so '|', '>', '&&' act as shell operators); any other
# argument is quoted.
join_command() {
  local arg out=""
  for arg in "$@"; do
    if [[ -n $arg && ! $arg =~ [[:space:]] ]]; then
      out+="$arg "
    else
      out+="$(printf '%q' "$arg") "
    fi
  done
  printf '%s' "${out% }"
}

# subst TEXT ID: TEXT with every occurrence of the job variable replaced by ID.
subst() {
  if [ -n "$jobvar" ]; then printf '%s' "${1//$jobvar/$2}"; else printf '%s' "$1"; fi
}
