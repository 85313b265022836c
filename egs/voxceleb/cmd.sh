# Job-dispatch commands: the project's (local jobs by default; see ../../cmd.sh for Slurm).
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../cmd.sh"
