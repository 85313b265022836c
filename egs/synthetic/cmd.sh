# Job-dispatch commands: the project's defaults (local execution; see ../../cmd.sh for Slurm).
# shellcheck disable=SC1091
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../cmd.sh"
