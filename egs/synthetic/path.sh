# The recipe runs inside the project: the top-level path.sh sets up .venv, PATH and PYTHONPATH.
# shellcheck disable=SC1091
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/path.sh"
