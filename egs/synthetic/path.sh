# The recipe runs inside the project: the top-level path.sh sets up .venv, PATH and PYTHONPATH.
# Symbolic links are resolved, so a working directory that links to this file works too.
# shellcheck disable=SC1091
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../path.sh"
