#!/usr/bin/env bash
# Real-speech recipe: speaker embeddings that must carry to corpora they have never heard.
# Three real corpora (Arabic Speech Commands: 1 s Arabic keywords; DSPSpeech-20: ~2 s Mandarin and
# English words; speechocean762: 2-10 s read English sentences of Mandarin speakers, children and
# adults), see README.md. Two protocols:
#   pooled  train on the training speakers of all three (24 + 26 + 125 = 175), test on each test set;
#   loco    leave one corpus out: for each corpus, train without any of its speakers and test on its
#           test set; the figure a user with a new corpus gets. Each held-out corpus's training half
#           serves as development data (the system and back-end are chosen there, never on test trials).
#
#   bash egs/realspeech/run.sh --seeds 1                 # everything, one seed per system
#   bash egs/realspeech/run.sh --stage 4 --stop-stage 6
#
# Every stage redoes only what its inputs or settings changed (see the project README).
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")"
. ./path.sh
. ./cmd.sh
. utils/gpu_job.sh  # gpu_job N LOG COMMAND...: one $cuda_cmd job on N GPUs, its error shown when it fails

stage=0
stop_stage=100
data_root=$DROPCLASS_ROOT/../shared/data  # holds arabic_speech_commands/, dspspeech20/, speechocean762/
work_dir=.                 # where data/, feats/, exp/ go; relative to this recipe's folder
seeds=1                    # training seeds per system; tables report mean ± std over seeds
nj=2                       # parallel jobs for features, VAD, CMN
feat_conf=conf/fbank.yaml  # the extractors' features: 80 log-mel filterbanks
floor_feat_conf=$DROPCLASS_ROOT/conf/mfcc.yaml  # the MFCC statistics floor's features
vad_conf=conf/vad.yaml
augment_conf=conf/augment.yaml
speeds=""                  # speed-perturbed copies, each a new set of speakers, e.g. "0.9 1.1" (see README.md)
train_conf=conf/train.yaml           # the extractor every protocol trains
dropclass_conf=conf/train_dropclass.yaml
dropadapt_conf=conf/dropadapt.yaml
train_set=""               # overrides of every training's config, KEY=VALUE separated by spaces, e.g. "data.max_frames=400"
systems="baseline dropclass dropadapt"  # pooled systems ("" for loco only); loco trains the baseline configuration
min_frames=30              # voiced frames an utterance needs to be used for training
min_utts_per_spk=8         # training speakers with fewer utterances are dropped
lda_dim=128                # LDA dimension before PLDA (capped at training speakers - 1)
cmn_window=300             # sliding CMN window, frames
chunk_frames=10000         # evaluation: longer utterances are embedded in near-equal chunks of at most this many frames, averaged
backends=cosine,cosine_dm,cosine_dm_asnorm,plda,plda_dm,stats,fused
fusion_components=cosine_dm,plda_dm,stats  # what the fused back-end fuses (chosen on development trials: RESULTS.md)
asnorm_top_n=100
train_jobs=2               # trainings run at once (each uses one core and a data-reading worker)
augment=false              # true: train on augmented copies too (worse on development trials at this budget: RESULTS.md)
tag=real                   # experiment name: exp/TAG (pooled), exp/TAG_loco, exp/TAG_loco_dev
help_message="Usage: bash egs/realspeech/run.sh [options]
Pooled and leave-one-corpus-out training and evaluation on three real corpora (Arabic Speech
Commands, DSPSpeech-20, speechocean762 from --data-root); trials are scored within a corpus only.
Exits 0 with a message when the corpora are not there.
Stages:
  0  prepare the corpora: train/test halves, test trials, development trials on the train halves
  1  fbank, energy VAD, sliding CMN + silence removal of every set; the MFCC statistics floor
  2  training augmentation: speed perturbation (--speeds, new speakers), simulated reverberation,
     noise and babble from the training audio itself (--augment-conf); their features
  3  training pools (all, no_asc, no_dsp, no_so); train the pooled systems and the loco baselines
  4  DropAdapt of the pooled baseline towards each test set's enrolment utterances (no labels)
  5  model packages (front end, PLDA, AS-norm cohort) and every back-end's scores; the fusion of
     each package (--fusion-components), trained on the development lists of the held-out corpora
     it is not tested on: a loco model's on the other two corpora's, a pooled model's on all three
  6  RESULTS.md (pooled, loco test, loco development) and exp/TAG/best: the pooled model of the
     configuration and back-end with the lowest mean loco development EER
Options (default):
  --stage N ($stage)  --stop-stage M ($stop_stage)  --nj N ($nj)  --seeds K ($seeds)
  --data-root DIR ($data_root)  --work-dir DIR ($work_dir)
  --feat-conf FILE ($feat_conf)  --floor-feat-conf FILE ($floor_feat_conf)  --vad-conf FILE ($vad_conf)
  --augment-conf FILE ($augment_conf)  --speeds \"F ...\" ($speeds)
  --train-conf FILE ($train_conf)  --dropclass-conf FILE ($dropclass_conf)  --dropadapt-conf FILE ($dropadapt_conf)
  --train-set \"KEY=VALUE ...\" ($train_set)
  --systems \"S ...\" ($systems)  --backends LIST ($backends)  --asnorm-top-n N ($asnorm_top_n)
  --fusion-components LIST ($fusion_components)
  --min-frames N ($min_frames)  --min-utts-per-spk N ($min_utts_per_spk)  --lda-dim N ($lda_dim)
  --cmn-window N ($cmn_window)  --chunk-frames N ($chunk_frames)  --train-jobs N ($train_jobs)
  --augment true|false ($augment)  --tag NAME ($tag)"
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$help_message" >&2; exit 1; }
case $data_root in /*) ;; *) data_root=$caller_dir/$data_root ;; esac
case $augment in true|false) ;; *) echo "$0: --augment takes true or false, got '$augment'" >&2; exit 1 ;; esac
if ! $augment && [ -n "$speeds" ]; then
  echo "$0: --speeds needs --augment true (the speed copies are part of the augmented training set)" >&2; exit 1
fi
for s in $systems; do
  case $s in baseline|dropclass|dropadapt) ;; *) echo "$0: unknown system '$s' in --systems" >&2; exit 1 ;; esac
done
data=$work_dir/data
feats=$work_dir/feats
exp=$work_dir/exp

corpora="asc dsp so"
declare -A corpus_dir=([asc]=arabic_speech_commands [dsp]=dspspeech20 [so]=speechocean762)
declare -A prep_script=([asc]=local/prepare_arabic_speech_commands.py [dsp]=local/prepare_dspspeech20.py
                        [so]=local/prepare_speechocean762.py)
# Development trials on each training half, drawn as the corpus's own test trials are.
declare -A dev_trials=([asc]="--enrol-per-speaker 10 --targets-per-enrol 50 --nontargets-per-enrol 100"
                       [dsp]="--enrol-per-speaker 10 --targets-per-enrol 40 --nontargets-per-enrol 80"
                       [so]="")   # prepare_speechocean762.py writes them

missing=()
for c in $corpora; do
  [ -d "$data_root/${corpus_dir[$c]}" ] || missing+=("$data_root/${corpus_dir[$c]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "$0: skipping the real-speech recipe: corpus folder(s) not found: ${missing[*]}" \
       "(set --data-root to the folder holding ${corpus_dir[*]})"
  exit 0
fi
seed_list=$(seq 1 "$seeds")
# the training data of each pool: with the augmented copies, or the clean utterances only
train_data() { if $augment; then echo $data/train_$1; else echo $data/train_${1}_clean; fi; }
# Independent jobs (trainings, adaptations, evaluations) run --train-jobs at a time; a failed one
# stops the recipe when it is waited for.
pids=()
in_background() {
  "$@" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$train_jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
}
wait_background() { for pid in "${pids[@]}"; do wait "$pid"; done; pids=(); }
pools="all no_asc no_dsp no_so"
pool_corpora() { case $1 in all) echo $corpora ;; no_*) for c in $corpora; do [ "no_$c" = "$1" ] || echo $c; done ;; esac; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  for c in $corpora; do
    "${prep_script[$c]}" "$data_root/${corpus_dir[$c]}" $data/${c}_orig
    utils/copy_data_dir.py --utt-prefix $c- --spk-prefix $c- $data/${c}_orig/train $data/${c}_train
    utils/copy_data_dir.py --utt-prefix $c- --spk-prefix $c- $data/${c}_orig/test $data/${c}_test
    # shellcheck disable=SC2086
    [ -z "${dev_trials[$c]}" ] || utils/make_trials.py ${dev_trials[$c]} $data/${c}_train
  done
fi

# features, VAD, CMN + silence removal: DIR -> DIR_no_sil
front_end() {
  steps/make_features.py --nj "$nj" --cmd "$train_cmd" --config "$feat_conf" $data/$1 $feats/$1
  steps/compute_vad.py --nj "$nj" --cmd "$train_cmd" --config "$vad_conf" $data/$1 $feats/$1
  steps/prepare_feats_for_egs.py --nj "$nj" --cmd "$train_cmd" --cmn-window "$cmn_window" $data/$1 $data/${1}_no_sil $feats/$1
}

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  for c in $corpora; do
    for part in train test; do front_end ${c}_$part; done
    # The floor: per-utterance MFCC mean+std, cosine after the set's mean, no VAD.
    for part in train test; do
      set_name=${c}_test; [ $part = test ] || set_name=${c}_dev
      utils/copy_data_dir.py $data/${c}_$part $data/${c}_${part}_mfcc
      steps/make_features.py --nj "$nj" --cmd "$train_cmd" --config "$floor_feat_conf" $data/${c}_${part}_mfcc $feats/${c}_${part}_mfcc
      outs="$exp/$tag $exp/${tag}_loco"; [ $part = test ] || outs=$exp/${tag}_loco_dev
      for out in $outs; do
        steps/score_mfcc_floor.py --use-vad false --set-name $set_name $data/${c}_${part}_mfcc $out/mfcc_floor/scores_$set_name
      done
    done
  done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ] && $augment; then
  for c in $corpora; do
    parts=$data/${c}_train_no_sil
    for f in $speeds; do
      utils/perturb_data_dir_speed.py $f $data/${c}_train $data/${c}_train_sp$f
      front_end ${c}_train_sp$f
      parts="$parts $data/${c}_train_sp${f}_no_sil"
    done
    # about one augmented copy per clean utterance, of a random kind (as Kaldi's v2 recipe keeps 1M of 4M)
    steps/augment_data_dir.py --config "$augment_conf" --set num_aug_utts=$(wc -l < $data/${c}_train/utt2spk) \
      $data/${c}_train $data/${c}_train_aug
    steps/make_features.py --nj "$nj" --cmd "$train_cmd" --config "$feat_conf" $data/${c}_train_aug $feats/${c}_train_aug
    steps/prepare_feats_for_egs.py --nj "$nj" --cmd "$train_cmd" --cmn-window "$cmn_window" $data/${c}_train_aug $data/${c}_train_aug_no_sil $feats/${c}_train_aug
    # shellcheck disable=SC2086
    utils/combine_data.py $data/${c}_train_augmented_no_sil $parts $data/${c}_train_aug_no_sil
  done
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  for pool in $pools; do
    aug="" clean=""
    for c in $(pool_corpora $pool); do aug="$aug $data/${c}_train_augmented_no_sil"; clean="$clean $data/${c}_train_no_sil"; done
    # shellcheck disable=SC2086
    if $augment; then
      utils/combine_data.py $data/train_${pool}_unfiltered $aug
      utils/filter_data_dir.py --min-frames "$min_frames" --min-utts-per-spk "$min_utts_per_spk" \
        $data/train_${pool}_unfiltered $data/train_$pool
    fi
    # the clean training speakers: what PLDA and the AS-norm cohort are trained on
    # shellcheck disable=SC2086
    utils/combine_data.py $data/train_${pool}_clean_unfiltered $clean
    utils/filter_data_dir.py --min-frames "$min_frames" --min-utts-per-spk "$min_utts_per_spk" \
      $data/train_${pool}_clean_unfiltered $data/train_${pool}_clean
  done
  overrides=()
  for kv in $train_set; do overrides+=(--set "$kv"); done
  train() {  # NAME CONF DATA EXP_DIR
    in_background gpu_job 1 $exp/log/train_$1.log steps/train_xvector.py --config "$2" --seed "$seed" "${overrides[@]}" $3 $4
  }
  for seed in $seed_list; do
    for system in $systems; do
      case $system in
        baseline) train ${tag}_baseline_seed$seed "$train_conf" $(train_data all) $exp/$tag/baseline/seed$seed ;;
        dropclass) train ${tag}_dropclass_seed$seed "$dropclass_conf" $(train_data all) $exp/$tag/dropclass/seed$seed ;;
      esac
    done
    for c in $corpora; do
      train ${tag}_no_${c}_seed$seed "$train_conf" $(train_data no_$c) $exp/${tag}_loco/models/no_$c/seed$seed
    done
  done
  wait_background
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ] && [[ " $systems " == *" dropadapt "* ]]; then
  # one adapted model per test corpus, kept apart so that only its scores form the DropAdapt row
  for seed in $seed_list; do
    for c in $corpora; do
      in_background gpu_job 1 $exp/log/${tag}_dropadapt_${c}_seed$seed.log steps/dropadapt.py --config "$dropadapt_conf" \
        --set adapt.seed="$seed" $exp/$tag/baseline/seed$seed/final.pt $(train_data all) $data/${c}_test_no_sil \
        $exp/$tag/dropadapt_models/${c}_seed$seed
    done
  done
  wait_background
fi

package() {  # MODEL_DIR POOL
  steps/make_model_package.py --frontend-data $data/asc_train --vad-conf "$vad_conf" --cmn-window "$cmn_window" \
    --lda-dim "$lda_dim" --asnorm-top-n "$asnorm_top_n" $1 $data/train_${2}_clean
}
evaluate() {  # MODEL_DIR DATA SET_NAME OUT_DIR: DATA's raw features give the statistics, DATA_no_sil the embeddings
  steps/evaluate_model.py --nj "$nj" --cmd "$train_cmd" --backends "$backends" --asnorm-top-n "$asnorm_top_n" \
    --chunk-frames "$chunk_frames" --set-name $3 --emb-dir $1/xvectors_$3 --raw-data $data/$2 $1 $data/${2}_no_sil $4
}
# the fusion of MODEL_DIR trained on the loco development lists of CORPUS...
fuse() {  # MODEL_DIR SEED CORPUS...
  local mdir=$1 seed=$2 devs=() c
  shift 2
  for c in "$@"; do devs+=(--dev $exp/${tag}_loco_dev/baseline/seed$seed ${c}_dev); done
  steps/train_fusion.py --components "$fusion_components" "${devs[@]}" $mdir
}
pooled_models() {  # SEED: the pooled model directories
  local system c
  for system in $systems; do
    if [ $system = dropadapt ]; then
      for c in $corpora; do echo $exp/$tag/dropadapt_models/${c}_seed$1; done
    else
      echo $exp/$tag/$system/seed$1
    fi
  done
}
evaluate_pooled() {  # SEED
  local system c mdir
  for system in $systems; do
    for c in $corpora; do
      if [ $system = dropadapt ]; then mdir=$exp/$tag/dropadapt_models/${c}_seed$1; else mdir=$exp/$tag/$system/seed$1; fi
      evaluate $mdir ${c}_test ${c}_test $exp/$tag/$system/seed$1
    done
  done
}

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  for seed in $seed_list; do
    # the loco models first: their development lists train every fusion
    for c in $corpora; do
      package $exp/${tag}_loco/models/no_$c/seed$seed no_$c
      evaluate $exp/${tag}_loco/models/no_$c/seed$seed ${c}_train ${c}_dev $exp/${tag}_loco_dev/baseline/seed$seed
    done
    for c in $corpora; do
      # shellcheck disable=SC2046
      fuse $exp/${tag}_loco/models/no_$c/seed$seed $seed $(for o in $corpora; do [ $o = $c ] || echo $o; done)
      # development again, now with the fusion; then the test set
      evaluate $exp/${tag}_loco/models/no_$c/seed$seed ${c}_train ${c}_dev $exp/${tag}_loco_dev/baseline/seed$seed
      evaluate $exp/${tag}_loco/models/no_$c/seed$seed ${c}_test ${c}_test $exp/${tag}_loco/baseline/seed$seed
    done
    for mdir in $(pooled_models $seed); do
      package $mdir all
      # shellcheck disable=SC2086
      fuse $mdir $seed $corpora
    done
    evaluate_pooled $seed
  done
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  tables="${tag}_loco ${tag}_loco_dev"; [ -z "$systems" ] || tables="$tag $tables"
  for table in $tables; do
    steps/make_results_table.py --baseline baseline --order baseline,dropclass,dropadapt \
      --columns eer,min_dcf_0.01 $exp/$table
  done
  if [[ " $systems " != *" baseline "* ]]; then
    echo "no pooled baseline in --systems '$systems': $exp/$tag/best not made by this run"
    cat $exp/${tag}_loco/RESULTS.md
    exit 0
  fi
  # the back-end with the lowest mean development EER over the held-out corpora; the pooled
  # baseline is the model a user gets, scored with it by default
  best_backend=$(steps/choose_backend.py --system baseline $exp/${tag}_loco_dev/RESULTS.json)
  steps/make_model_package.py --scoring-backend "$best_backend" --asnorm-top-n "$asnorm_top_n" \
    --lda-dim "$lda_dim" $exp/$tag/baseline/seed1 $data/train_all_clean
  ln -sfn baseline/seed1 $exp/$tag/best
  echo "best: $exp/$tag/best -> baseline/seed1, back-end $best_backend (chosen on loco development trials)"
  cat $exp/$tag/RESULTS.md $exp/${tag}_loco/RESULTS.md
fi
