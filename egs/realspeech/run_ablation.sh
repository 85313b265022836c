#!/usr/bin/env bash
# Short-utterance ablation of the real-speech baseline (issue 7; results in ABLATION.md):
# baseline system only, one seed per call (--seed), every arm trained with the same schedule
# (by default the recipe's), scored as run.sh stage 4 does (cosine with the training-embedding
# mean removed, LDA+PLDA on the pooled training speakers). WORK_DIR/exp/RESULTS.md gathers every
# seed run so far (mean +- std).
#
#   reference     crops 40-80 frames, the recipe's VAD (conf/vad.yaml), extraction --min-frames 25
#   crops20-40    training crops of 20-40 frames, otherwise the reference
#   vad_thr2      almost no VAD (vad_energy_threshold 2.0): VAD, CMN + silence removal and the
#                 recipe's filtering redone from the recipe's MFCCs, then trained as the reference
#   extract_min1  the reference model, test inputs never padded (--min-frames 1)
#   extract_min80 the reference model, test inputs padded cyclically to 80 frames (the longest crop)
#
# Reads the recipe's prepared data dirs (--recipe-data: <set>, <set>_no_sil and train_real, with
# feats.scp, made by run.sh stages 0-1) and never writes there; everything goes to --work-dir.
# Finished work is skipped (trained models, embeddings, PLDA, scores, data dirs).
#
#   for s in 1 2 3; do nice -n 10 env OMP_NUM_THREADS=1 bash egs/realspeech/run_ablation.sh --seed $s; done
set -euo pipefail
cd "$(dirname "$0")"       # egs/realspeech
. ./path.sh

work_dir=ablation_work     # data/, mfcc/, exp/, conf/ of the ablation; relative to egs/realspeech
recipe_data=data           # the recipe's prepared data dirs (read only)
baseline_conf=conf/train_baseline.yaml
vad_conf=conf/vad.yaml
seed=1
num_iters=1500             # every arm (the recipe's schedule, conf/train_baseline.yaml)
lr_halve_at=900,1300       # every arm (the recipe's schedule)
short_crops=20,40          # min,max training crop of the crops arm (reference: the config's 40,80)
low_vad_threshold=2.0      # vad_energy_threshold of the VAD arm (recipe: 5.5)
nj=2
min_frames=30              # the recipe's filtering (run.sh --min-frames, --min-utts-per-spk)
min_utts_per_spk=8
lda_dim=64
cmn_window=300
extract_min_frames=25      # run.sh's extraction padding, used by every trained arm
help_message="Usage: bash egs/realspeech/run_ablation.sh [options]
Trained-system ablation of crops, VAD and short-input extraction on the real-speech test sets
(baseline only, one --seed per call); writes WORK_DIR/exp/RESULTS.md over every seed run so far.
See the header of this script and ../ABLATION.md.
Options (default):
  --work-dir DIR ($work_dir)  --recipe-data DIR ($recipe_data)  --seed N ($seed)
  --baseline-conf FILE ($baseline_conf)  --vad-conf FILE ($vad_conf)
  --num-iters N ($num_iters)  --lr-halve-at LIST ($lr_halve_at)  --short-crops MIN,MAX ($short_crops)
  --low-vad-threshold X ($low_vad_threshold)  --nj N ($nj)  --min-frames N ($min_frames)
  --min-utts-per-spk N ($min_utts_per_spk)  --lda-dim N ($lda_dim)  --cmn-window N ($cmn_window)
  --extract-min-frames N ($extract_min_frames)"
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$help_message" >&2; exit 1; }

corpora="asc dsp"
for s in train_real asc_train dsp_train asc_test dsp_test asc_test_no_sil dsp_test_no_sil; do
  [ -f $recipe_data/$s/feats.scp ] || {
    echo "ERROR ($0): $recipe_data/$s/feats.scp not found: run egs/realspeech/run.sh --stop-stage 1 first" >&2
    exit 1
  }
done
exp=$work_dir/exp
data=$work_dir/data
schedule=(--set train.num_iters=$num_iters --set "optim.lr_halve_at=[$lr_halve_at]")

# train ARM TRAIN_DIR VAD_CONF [--set KEY=VALUE ...]: one baseline model, exp/ARM/seed$seed.
train() {
  local dir=$exp/$1/seed$seed train_dir=$2 vad=$3
  shift 3
  [ -f $dir/final.pt ] || steps/train_xvector.py --config $baseline_conf --seed $seed \
    "${schedule[@]}" "$@" --dir $dir $train_dir
  utils/write_frontend.sh $recipe_data/asc_train/feats_config.yaml $vad $cmn_window $dir
}

# score ARM MODEL TRAIN_DIR TEST_PREFIX EXTRACT_MIN_FRAMES: run.sh stage 4 for one model into
# exp/ARM/seed$seed (embeddings of TRAIN_DIR and TEST_PREFIX{asc,dsp}_test_no_sil, PLDA, scores).
score() {
  local out=$exp/$1/seed$seed model=$2 train_dir=$3 test_prefix=$4 emin=$5
  if [ ! -f $out/plda/plda.npz ]; then
    steps/extract_embeddings.py --min-frames $emin $model $train_dir $out/xvectors_train
    steps/train_plda.py --lda-dim $lda_dim $out/xvectors_train/xvector.scp $train_dir/utt2spk $out/plda
  fi
  for c in $corpora; do
    local test=${test_prefix}${c}_test_no_sil scp=$out/xvectors_${c}_test/xvector.scp
    [ -f $scp ] || steps/extract_embeddings.py --min-frames $emin $model $test $out/xvectors_${c}_test
    [ -f $out/scores_${c}_test_cosine/metrics.json ] || steps/score_trials.py --backend cosine \
      --set-name ${c}_test --mean-scp $out/xvectors_train/xvector.scp \
      $test/trials $scp $scp $out/scores_${c}_test_cosine
    [ -f $out/scores_${c}_test_plda/metrics.json ] || steps/score_trials.py --backend plda \
      --plda-dir $out/plda --set-name ${c}_test $test/trials $scp $scp $out/scores_${c}_test_plda
  done
}

# 1. reference, and the extraction arms on its model (no retraining).
train reference $recipe_data/train_real $vad_conf
ref_model=$exp/reference/seed$seed/final.pt
score reference $ref_model $recipe_data/train_real $recipe_data/ $extract_min_frames
score extract_min1 $ref_model $recipe_data/train_real $recipe_data/ 1
score extract_min80 $ref_model $recipe_data/train_real $recipe_data/ 80

# 2. short training crops.
train crops${short_crops/,/-} $recipe_data/train_real $vad_conf \
  --set data.min_frames=${short_crops%,*} --set data.max_frames=${short_crops#*,}
score crops${short_crops/,/-} $exp/crops${short_crops/,/-}/seed$seed/final.pt $recipe_data/train_real \
  $recipe_data/ $extract_min_frames

# 3. almost no VAD: the recipe's MFCCs, VAD with a low constant threshold, CMN + silence removal,
# the recipe's pooling and filtering.
arm=vad_thr$low_vad_threshold
low_vad_conf=$work_dir/conf/vad_thr$low_vad_threshold.yaml
if [ ! -f $low_vad_conf ]; then
  mkdir -p $work_dir/conf
  grep -q '^vad_energy_threshold:' $vad_conf || { echo "ERROR ($0): no vad_energy_threshold in $vad_conf" >&2; exit 1; }
  sed "s/^vad_energy_threshold:.*/vad_energy_threshold: $low_vad_threshold/" $vad_conf > $low_vad_conf.tmp
  mv $low_vad_conf.tmp $low_vad_conf
fi
for s in asc_train dsp_train asc_test dsp_test; do
  [ -f $data/$arm/${s}_no_sil/feats.scp ] && continue
  utils/copy_data_dir.py $recipe_data/$s $data/$arm/$s
  cp $recipe_data/$s/feats_config.yaml $data/$arm/$s/
  steps/compute_vad.py --nj $nj --config $low_vad_conf $data/$arm/$s $work_dir/mfcc/$arm/$s
  steps/prepare_feats_for_egs.py --nj $nj --cmn-window $cmn_window $data/$arm/$s \
    $data/$arm/${s}_no_sil $work_dir/mfcc/$arm/$s
done
if [ ! -f $data/$arm/train_real/spk2utt ]; then
  utils/combine_data.py $data/$arm/train_real_all $data/$arm/asc_train_no_sil $data/$arm/dsp_train_no_sil
  utils/filter_data_dir.py --min-frames $min_frames --min-utts-per-spk $min_utts_per_spk \
    $data/$arm/train_real_all $data/$arm/train_real
fi
train $arm $data/$arm/train_real $low_vad_conf
score $arm $exp/$arm/seed$seed/final.pt $data/$arm/train_real $data/$arm/ $extract_min_frames

steps/make_results_table.py --baseline reference \
  --order reference,crops${short_crops/,/-},$arm,extract_min1,extract_min80 $exp
cat $exp/RESULTS.md
