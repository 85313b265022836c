# The recipe runs inside the project's environment: the top-level path.sh (virtualenv, PATH with
# utils/ steps/, PYTHONPATH, LC_ALL=C), plus this recipe's local/ first on PATH. Symbolic links
# are resolved, so a working directory that links to these files (as the tests make) works too.
__recipe_dir=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
. "$__recipe_dir/../../path.sh" || return 1 2>/dev/null || exit 1
export PATH="$__recipe_dir/local:$PATH"
unset __recipe_dir
