#!/usr/bin/env bash
# Records beside a trained model the front end it was trained with, as MODEL_DIR/frontend.yaml
# (keys feats: the training data's feats_config.yaml, vad: the VAD options, cmn_window), so that
# steps/score_corpus.py can score a new corpus with the same features without being told them.
#
# Usage: utils/write_frontend.sh FEATS_CONFIG VAD_CONF CMN_WINDOW MODEL_DIR
#   e.g. utils/write_frontend.sh data/train/feats_config.yaml conf/vad.yaml 300 exp/baseline/seed0
# An existing frontend.yaml is kept.
set -euo pipefail
usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -eq 4 ] || { usage >&2; exit 1; }
feats_config=$1 vad_conf=$2 cmn_window=$3 dir=$4
for f in "$feats_config" "$vad_conf"; do
  [ -f "$f" ] || { echo "ERROR (write_frontend.sh): $f does not exist" >&2; exit 1; }
done
[ -f "$dir/frontend.yaml" ] && exit 0
mkdir -p "$dir"
{ echo "feats:"; sed 's/^/  /' "$feats_config"
  echo "vad:"; sed 's/^/  /' "$vad_conf"
  echo "cmn_window: $cmn_window"; } > "$dir/.frontend.yaml.tmp"
mv "$dir/.frontend.yaml.tmp" "$dir/frontend.yaml"
