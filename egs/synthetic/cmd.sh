# Job-dispatch commands: the project's defaults (local execution; see ../../cmd.sh for Slurm).
# shellcheck disable=SC1091
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/cmd.sh"
