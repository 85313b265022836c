#!/usr/bin/env bash
# The default recipe, egs/synthetic/run.sh, run in the project root: the same options (bash
# run.sh --help), and data/, mfcc/, corpus/ and exp/ (exp/RESULTS.md) under the project root.
# Its configuration files are egs/synthetic/conf/ (conf/ here links to them).
set -euo pipefail
cd "$(dirname "$0")"
exec bash egs/synthetic/run.sh "$@"
