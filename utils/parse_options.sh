# Option parsing for recipe scripts, with the semantics of Kaldi's parse_options.sh.
#
# Source it after setting the defaults of the script's options:
#
#   nj=4
#   use_gpu=false
#   help_message="Usage: $0 [options] <data-dir> <exp-dir>
#     --nj N          parallel jobs (default: $nj)
#     --use-gpu BOOL  (default: $use_gpu)"
#   . utils/parse_options.sh
#   data=$1; exp=$2
#
# Then:
#   --opt-name VALUE and --opt-name=VALUE set the shell variable opt_name (dashes become
#       underscores); the variable must already be set, else it is an error naming the option.
#       A variable whose default is true or false only accepts true or false.
#   --config FILE  sources FILE, whose lines are name=value (or comments); each name must be
#       an existing variable. Config files are read before the other options, wherever they
#       appear, so the command line overrides them.
#   --help, -h     prints $help_message and exits 0.
#   --             ends the options.
# Parsing stops at the first argument that is not an option; the arguments left (the
# positional ones) are in "$@". Errors print one line naming the option and exit 1.

__po_die() {
  echo "$0: $*" >&2
  exit 1
}

__po_check_name() {  # __po_check_name OPTION-TEXT VARIABLE-NAME
  [[ $2 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || __po_die "invalid option $1"
  [ -n "${!2+set}" ] || __po_die "invalid option $1 (no such option; see --help)"
}

__po_set() {  # __po_set OPTION-TEXT VARIABLE-NAME VALUE
  __po_check_name "$1" "$2"
  case "${!2}" in
    true|false)
      case "$3" in
        true|false) ;;
        *) __po_die "option $1 takes true or false, got '$3'" ;;
      esac ;;
  esac
  printf -v "$2" '%s' "$3"
}

__po_source_config() {  # __po_source_config FILE
  [ -f "$1" ] || __po_die "config file $1 (given with --config) does not exist"
  local lineno=0 line name
  while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    [[ $line =~ ^[[:space:]]*(#.*)?$ ]] && continue
    [[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)= ]] \
      || __po_die "$1:$lineno: expected name=value: '$line'"
    name=${BASH_REMATCH[1]}
    [ -n "${!name+set}" ] || __po_die "$1:$lineno: unknown option '$name': '$line'"
  done < "$1"
  # shellcheck disable=SC1090
  . "$1"
}

# First pass: config files, so that the command line overrides them.
__po_args=("$@")
for ((__po_i = 0; __po_i < ${#__po_args[@]}; __po_i++)); do
  case "${__po_args[__po_i]}" in
    --config)
      [ $((__po_i + 1)) -lt ${#__po_args[@]} ] || __po_die "option --config needs a file name"
      __po_i=$((__po_i + 1))
      __po_source_config "${__po_args[__po_i]}" ;;
    --config=*) __po_source_config "${__po_args[__po_i]#--config=}" ;;
    --) break ;;
    --*) [[ ${__po_args[__po_i]} == *=* ]] || __po_i=$((__po_i + 1)) ;;
    -h) ;;
    *) break ;;
  esac
done

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      printf '%s\n' "${help_message:-No help available for $0 (it sets no help_message).}"
      exit 0 ;;
    --) shift; break ;;
    --config) shift 2 || true ;;
    --config=*) shift ;;
    --*=*)
      __po_opt=${1%%=*}
      __po_name=${__po_opt#--}
      __po_set "$__po_opt" "${__po_name//-/_}" "${1#*=}"
      shift ;;
    --?*)
      __po_name=${1#--}
      __po_check_name "$1" "${__po_name//-/_}"
      [ $# -ge 2 ] || __po_die "option $1 needs a value"
      __po_set "$1" "${__po_name//-/_}" "$2"
      shift 2 ;;
    *) break ;;
  esac
done

unset -f __po_die __po_check_name __po_set __po_source_config
unset __po_args __po_i __po_opt __po_name
true
