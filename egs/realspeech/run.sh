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
ivectors="ivector ivector_raw"  # i-vector systems trained on each pool beside the extractors, one back-end each ("" for none)
ivector_conf=conf/ivector.yaml          # the `ivector` system: Kaldi's front end (CMN, voiced frames)
ivector_raw_conf=conf/ivector_raw.yaml  # the `ivector_raw` system: the whole recording (no CMN, no VAD)
systems="baseline dropclass dropadapt"  # pooled systems ("" for loco only); loco trains the baseline configuration
loco=true                  # false: the pooled systems only, no loco trainings (nor the fused back-end, trained on their development lists)
dropadapt_variants=standard  # DropAdapt variants run by the dropadapt system: any of standard combine uniform_agg random only_data
backend_adapt=""           # DropAdapt's competitor: back-end adaptation of the pooled baseline to the same enrolment
                           # utterances, any of: mean (re-centring) plda (Kaldi's ivector-adapt-plda) both
adapt_to="asc dsp so"      # the test sets whose enrolment utterances DropAdapt and back-end adaptation adapt to
min_frames=30              # voiced frames an utterance needs to be used for training
min_utts_per_spk=8         # training speakers with fewer utterances are dropped
lda_dim=128                # LDA dimension before PLDA (capped at training speakers - 1)
cmn_window=300             # sliding CMN window, frames
chunk_frames=10000         # evaluation: longer utterances are embedded in near-equal chunks of at most this many frames, averaged
backends=cosine,cosine_dm,cosine_dm_asnorm,plda,plda_dm,stats,ivector,ivector_raw,fused
fusion_components=cosine_dm,plda_dm,stats,ivector  # what the fused back-end fuses (chosen on development trials: RESULTS.md)
asnorm_top_n=100
train_jobs=2               # trainings run at once (each uses one core and a data-reading worker)
augment=false              # true: train on augmented copies too (worse on development trials at this budget: RESULTS.md)
cross_channel=true         # also score the loco models on each test set with its test side through another microphone
cross_channel_conf=conf/cross_channel.yaml
dev_conditions="same cross"  # the development lists the fusion is trained on and exp/TAG/best's back-end is chosen on:
                             # same (the held-out corpora's training halves as recorded), cross (the same trials,
                             # their test side through another microphone: exp/TAG_loco_dev_xch), or both
tag=real                   # experiment name: exp/TAG (pooled), exp/TAG_loco, exp/TAG_loco_dev, exp/TAG_loco_xch,
                           # exp/TAG_loco_dev_xch
overwrite=false            # true: retrain/re-adapt a system whose configuration, data or code changed
help_message="Usage: bash egs/realspeech/run.sh [options]
Pooled and leave-one-corpus-out training and evaluation on three real corpora (Arabic Speech
Commands, DSPSpeech-20, speechocean762 from --data-root); trials are scored within a corpus only.
Exits 0 with a message when the corpora are not there.
Stages:
  0  prepare the corpora: train/test halves, test trials, development trials on the train halves
  1  fbank, energy VAD, sliding CMN + silence removal of every set; the MFCC statistics floor;
     with --cross-channel true each test set's cross-channel version (the test side of every
     trial through a simulated microphone: a check on cues of the recording session); with
     --dev-conditions cross the same of each development set
  2  training augmentation: speed perturbation (--speeds, new speakers), simulated reverberation,
     noise and babble from the training audio itself (--augment-conf); their features
  3  training pools (all, no_asc, no_dsp, no_so); train the pooled systems and the loco baselines, and
     each pool's i-vector systems (--ivectors: UBM and total variability without labels, LDA + PLDA)
  4  DropAdapt (--dropadapt-variants) of the pooled baseline towards the enrolment utterances of
     each --adapt-to test set (no labels)
  5  model packages (front end, PLDA, AS-norm cohort, the pool's i-vector systems) and every
     back-end's scores; back-end
     adaptation (--backend-adapt) of the pooled baseline's package to the same enrolment
     utterances; the fusion of each package (--fusion-components), trained on the development
     lists (of each --dev-conditions) of the held-out corpora it is not tested on: a loco
     model's on the other two corpora's, a pooled model's on all three
  6  RESULTS.md (pooled, loco test, loco development, cross-channel) and exp/TAG/best: the pooled
     model of the configuration and back-end with the lowest mean loco development EER (over
     the --dev-conditions)
Options (default):
  --stage N ($stage)  --stop-stage M ($stop_stage)  --nj N ($nj)  --seeds K ($seeds)
  --data-root DIR ($data_root)  --work-dir DIR ($work_dir)
  --feat-conf FILE ($feat_conf)  --floor-feat-conf FILE ($floor_feat_conf)  --vad-conf FILE ($vad_conf)
  --augment-conf FILE ($augment_conf)  --speeds \"F ...\" ($speeds)
  --train-conf FILE ($train_conf)  --dropclass-conf FILE ($dropclass_conf)  --dropadapt-conf FILE ($dropadapt_conf)
  --train-set \"KEY=VALUE ...\" ($train_set)
  --ivectors \"S ...\" ($ivectors)  --ivector-conf FILE ($ivector_conf)  --ivector-raw-conf FILE ($ivector_raw_conf)
  --systems \"S ...\" ($systems)  --loco true|false ($loco)
  --dropadapt-variants \"V ...\" ($dropadapt_variants)  --backend-adapt \"A ...\" ($backend_adapt)
  --adapt-to \"C ...\" ($adapt_to)  --backends LIST ($backends)  --asnorm-top-n N ($asnorm_top_n)
  --fusion-components LIST ($fusion_components)
  --min-frames N ($min_frames)  --min-utts-per-spk N ($min_utts_per_spk)  --lda-dim N ($lda_dim)
  --cmn-window N ($cmn_window)  --chunk-frames N ($chunk_frames)  --train-jobs N ($train_jobs)
  --augment true|false ($augment)  --cross-channel true|false ($cross_channel)
  --cross-channel-conf FILE ($cross_channel_conf)  --dev-conditions \"same cross\" ($dev_conditions)  --tag NAME ($tag)
  --overwrite true|false ($overwrite: a trained or adapted system whose configuration, data or
  code changed is an error naming what differs unless true)"
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
case $loco in true|false) ;; *) echo "$0: --loco takes true or false, got '$loco'" >&2; exit 1 ;; esac
case $cross_channel in true|false) ;; *) echo "$0: --cross-channel takes true or false, got '$cross_channel'" >&2; exit 1 ;; esac
[ -n "$dev_conditions" ] || { echo "$0: --dev-conditions needs same, cross or both" >&2; exit 1; }
for d in $dev_conditions; do
  case $d in same|cross) ;; *) echo "$0: unknown condition '$d' in --dev-conditions (same, cross)" >&2; exit 1 ;; esac
done
case $overwrite in true) overwrite_opt=--overwrite ;; false) overwrite_opt= ;;
  *) echo "$0: --overwrite takes true or false, got '$overwrite'" >&2; exit 1 ;; esac
has() { [[ " $1 " == *" $2 "* ]]; }  # has LIST WORD: WORD is one of the space-separated LIST
if ! $loco && has "${backends//,/ }" fused; then
  echo "$0: the fused back-end is trained on the loco development lists: --loco false needs --backends without fused" >&2
  exit 1
fi
if ! $loco && [ -z "$systems" ]; then
  echo "$0: --loco false with --systems \"\" leaves nothing to train" >&2; exit 1
fi
for s in $ivectors; do
  case $s in ivector|ivector_raw) ;; *) echo "$0: unknown i-vector system '$s' in --ivectors (ivector, ivector_raw)" >&2; exit 1 ;; esac
done
for b in ${backends//,/ } ${fusion_components//,/ }; do
  case $b in ivector|ivector_raw)
    has "$ivectors" $b || { echo "$0: back-end $b needs its i-vector system: add $b to --ivectors" >&2; exit 1; } ;;
  esac
done
for v in $dropadapt_variants; do
  case $v in standard|combine|uniform_agg|random|only_data) ;;
    *) echo "$0: unknown DropAdapt variant '$v' in --dropadapt-variants" >&2; exit 1 ;; esac
done
for how in $backend_adapt; do
  case $how in mean|plda|both) ;; *) echo "$0: unknown --backend-adapt '$how' (mean, plda or both)" >&2; exit 1 ;; esac
done
if [ -n "$backend_adapt" ] && ! has "$systems" baseline; then
  echo "$0: --backend-adapt adapts the pooled baseline: add baseline to --systems" >&2; exit 1
fi
for c in $adapt_to; do
  case $c in asc|dsp|so) ;; *) echo "$0: unknown corpus '$c' in --adapt-to (asc, dsp, so)" >&2; exit 1 ;; esac
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
pools="all"; ! $loco || pools="all no_asc no_dsp no_so"
# the pooled systems in results order: the trained ones, the DropAdapt variants, the back-end adaptations
adapted_name() { if [ "$1" = standard ]; then echo dropadapt; else echo "dropadapt_$1"; fi; }
system_names() {
  local s v how
  for s in $systems; do
    if [ $s = dropadapt ]; then for v in $dropadapt_variants; do adapted_name $v; done; else echo $s; fi
  done
  for how in $backend_adapt; do echo "backend_$how"; done
}
# model_dir SYSTEM CORPUS SEED: the model scored on CORPUS's test set; an adapted one (to that
# test set's enrolment utterances) is kept apart, so that only its scores form its row
model_dir() {
  case $1 in
    baseline|dropclass) echo $exp/$tag/$1/seed$3 ;;
    *) echo $exp/$tag/${1}_models/${2}_seed$3 ;;
  esac
}
# KIND POOL: the pool's i-vector system; no --tag in the path: it depends on its config and the
# pool's clean audio only, so every experiment shares it (a changed --ivector-conf retrains it)
ivector_dir() { echo $exp/ivector_systems/$1/$2; }
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

# the halves with a cross-channel version: the test halves for the check, the training halves for
# the cross-channel development lists
xch_parts=""
! $loco || ! has "$dev_conditions" cross || xch_parts=train
! $cross_channel || xch_parts="$xch_parts test"
# dev or test: the name of a half's trial lists; the experiment its cross-channel lists are scored in
list_name() { if [ "$1" = train ]; then echo dev; else echo test; fi; }
xch_exp() { if [ "$1" = train ]; then echo $exp/${tag}_loco_dev_xch; else echo $exp/${tag}_loco_xch; fi; }
# a --dev-conditions word: the experiment its development lists are scored in, and their names' suffix
dev_exp() { if [ "$1" = same ]; then echo $exp/${tag}_loco_dev; else xch_exp train; fi; }
dev_suffix() { [ "$1" = same ] || echo _xch; }

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  for c in $corpora; do
    for part in train test; do front_end ${c}_$part; done
    for part in $xch_parts; do
      # the test side of every trial through another microphone: UTT-sim_channel copies, rendered in the feature jobs
      steps/augment_data_dir.py --config "$cross_channel_conf" $data/${c}_$part $data/${c}_${part}_xch_aug
      front_end ${c}_${part}_xch_aug
      steps/make_cross_channel_set.py $data/${c}_$part $data/${c}_${part}_xch_aug $data/${c}_${part}_xch
      steps/make_cross_channel_set.py $data/${c}_${part}_no_sil $data/${c}_${part}_xch_aug_no_sil $data/${c}_${part}_xch_no_sil
    done
    # The floor: per-utterance MFCC mean+std, cosine after the set's mean, no VAD.
    for part in train test; do
      set_name=${c}_$(list_name $part)
      utils/copy_data_dir.py $data/${c}_$part $data/${c}_${part}_mfcc
      steps/make_features.py --nj "$nj" --cmd "$train_cmd" --config "$floor_feat_conf" $data/${c}_${part}_mfcc $feats/${c}_${part}_mfcc
      outs="$exp/$tag $exp/${tag}_loco"; [ $part = test ] || outs=$exp/${tag}_loco_dev
      for out in $outs; do
        steps/score_mfcc_floor.py --use-vad false --set-name $set_name $data/${c}_${part}_mfcc $out/mfcc_floor/scores_$set_name
      done
    done
    for part in $xch_parts; do  # the floor of the cross-channel trials
      set_name=${c}_$(list_name $part)_xch
      utils/copy_data_dir.py $data/${c}_${part}_xch_aug $data/${c}_${part}_xch_aug_mfcc
      steps/make_features.py --nj "$nj" --cmd "$train_cmd" --config "$floor_feat_conf" $data/${c}_${part}_xch_aug_mfcc $feats/${c}_${part}_xch_aug_mfcc
      steps/make_cross_channel_set.py $data/${c}_${part}_mfcc $data/${c}_${part}_xch_aug_mfcc $data/${c}_${part}_xch_mfcc
      steps/score_mfcc_floor.py --use-vad false --set-name $set_name $data/${c}_${part}_xch_mfcc \
        $(xch_exp $part)/mfcc_floor/scores_$set_name
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
  train() {  # NAME CONF DATA EXP_DIR; an interrupted training continues from its newest checkpoint
    in_background gpu_job 1 $exp/log/train_$1.log steps/train_xvector.py --config "$2" --seed "$seed" "${overrides[@]}" \
      --resume $overwrite_opt $3 $4
  }
  # the i-vector systems of every pool, on its clean training utterances' raw features (one job each)
  for kind in $ivectors; do
    conf=$ivector_conf; [ $kind = ivector ] || conf=$ivector_raw_conf
    for pool in $pools; do
      # shellcheck disable=SC2046
      in_background $train_cmd $(ivector_dir $kind $pool)/log/train_ivector.log steps/train_ivector.py --config "$conf" \
        $(for c in $(pool_corpora $pool); do echo $data/${c}_train; done) $(ivector_dir $kind $pool)
    done
  done
  for seed in $seed_list; do
    for system in $systems; do
      case $system in
        baseline) train ${tag}_baseline_seed$seed "$train_conf" $(train_data all) $exp/$tag/baseline/seed$seed ;;
        dropclass) train ${tag}_dropclass_seed$seed "$dropclass_conf" $(train_data all) $exp/$tag/dropclass/seed$seed ;;
      esac
    done
    for c in $corpora; do
      ! $loco || train ${tag}_no_${c}_seed$seed "$train_conf" $(train_data no_$c) $exp/${tag}_loco/models/no_$c/seed$seed
    done
  done
  wait_background
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ] && has "$systems" dropadapt; then
  for seed in $seed_list; do
    for variant in $dropadapt_variants; do
      for c in $adapt_to; do
        name=$(adapted_name $variant)
        in_background gpu_job 1 $exp/log/${tag}_${name}_${c}_seed$seed.log steps/dropadapt.py --config "$dropadapt_conf" \
          --set adapt.variant=$variant --set adapt.seed="$seed" $overwrite_opt $exp/$tag/baseline/seed$seed/final.pt $(train_data all) \
          $data/${c}_test_no_sil $(model_dir $name $c $seed)
      done
    done
  done
  wait_background
fi

package() {  # MODEL_DIR POOL
  local systems=() kind
  for kind in $ivectors; do systems+=(--${kind/_/-} $(ivector_dir $kind $2)); done
  steps/make_model_package.py --frontend-data $data/asc_train --vad-conf "$vad_conf" --cmn-window "$cmn_window" \
    --lda-dim "$lda_dim" --asnorm-top-n "$asnorm_top_n" "${systems[@]}" $1 $data/train_${2}_clean
}
evaluate() {  # MODEL_DIR DATA SET_NAME OUT_DIR: DATA's raw features give the statistics, DATA_no_sil the embeddings
  steps/evaluate_model.py --nj "$nj" --cmd "$train_cmd" --backends "$backends" --asnorm-top-n "$asnorm_top_n" \
    --chunk-frames "$chunk_frames" --set-name $3 --emb-dir $1/xvectors_$3 --raw-data $data/$2 $1 $data/${2}_no_sil $4
}
# CORPUS's loco model on its development lists: as recorded, and through another microphone
evaluate_dev() {  # CORPUS SEED
  evaluate $exp/${tag}_loco/models/no_$1/seed$2 ${1}_train ${1}_dev $exp/${tag}_loco_dev/baseline/seed$2
  ! has "$xch_parts" train || evaluate $exp/${tag}_loco/models/no_$1/seed$2 ${1}_train_xch ${1}_dev_xch \
    $(xch_exp train)/baseline/seed$2
}
# the fusion of MODEL_DIR trained on the loco development lists of CORPUS..., of each --dev-conditions
fuse() {  # MODEL_DIR SEED CORPUS...
  local mdir=$1 seed=$2 devs=() c d
  shift 2
  for c in "$@"; do
    for d in $dev_conditions; do devs+=(--dev $(dev_exp $d)/baseline/seed$seed ${c}_dev$(dev_suffix $d)); done
  done
  steps/train_fusion.py --components "$fusion_components" "${devs[@]}" $mdir
}
# the corpora whose test set SYSTEM is scored on: an adapted system only on those it adapted to
scored_corpora() { case $1 in baseline|dropclass) echo $corpora ;; *) echo $adapt_to ;; esac; }
evaluate_pooled() {  # SEED
  local system c
  for system in $(system_names); do
    for c in $(scored_corpora $system); do
      evaluate $(model_dir $system $c $1) ${c}_test ${c}_test $exp/$tag/$system/seed$1
    done
  done
}

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  fused=false; ! has "${backends//,/ }" fused || fused=true
  for seed in $seed_list; do
    if $loco; then
      # the loco models first: their development lists train every fusion
      for c in $corpora; do
        package $exp/${tag}_loco/models/no_$c/seed$seed no_$c
        evaluate_dev $c $seed
      done
      for c in $corpora; do
        if $fused; then
          # shellcheck disable=SC2046
          fuse $exp/${tag}_loco/models/no_$c/seed$seed $seed $(for o in $corpora; do [ $o = $c ] || echo $o; done)
          evaluate_dev $c $seed  # again, now with the fusion
        fi
        evaluate $exp/${tag}_loco/models/no_$c/seed$seed ${c}_test ${c}_test $exp/${tag}_loco/baseline/seed$seed
        ! $cross_channel || evaluate $exp/${tag}_loco/models/no_$c/seed$seed ${c}_test_xch ${c}_test_xch \
          $(xch_exp test)/baseline/seed$seed
      done
    fi
    for system in $(system_names); do
      for c in $(scored_corpora $system); do
        mdir=$(model_dir $system $c $seed)
        case $system in
          backend_*)  # the baseline's package, its back-ends adapted by one job whose --nj jobs run inside it
            $train_cmd --num-threads "$nj" $mdir/log/adapt_model.log steps/adapt_model.py --dropadapt false \
              --backend-adapt ${system#backend_} --nj "$nj" $overwrite_opt $exp/$tag/baseline/seed$seed $data/train_all_clean \
              $data/${c}_test $mdir || { tail -n 3 $mdir/log/adapt_model.log >&2; exit 1; } ;;
          *) package $mdir all ;;
        esac
        # shellcheck disable=SC2086
        if $fused; then fuse $mdir $seed $corpora; fi
      done
    done
    evaluate_pooled $seed
  done
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  tables=""; [ -z "$systems" ] || tables=$tag; ! $loco || tables="$tables ${tag}_loco ${tag}_loco_dev"
  ! $loco || ! $cross_channel || tables="$tables ${tag}_loco_xch"
  ! $loco || ! has "$dev_conditions" cross || tables="$tables ${tag}_loco_dev_xch"
  order=$(system_names | paste -sd, -)
  for table in $tables; do
    columns=eer,min_dcf_0.01
    [ "$seeds" -eq 1 ] || columns=$columns,paired_delta_eer   # each seed against the baseline of its seed
    steps/make_results_table.py --baseline baseline --order "${order:-baseline}" --columns $columns $exp/$table
  done
  if ! $loco; then
    echo "--loco false: no loco development trials to choose the back-end on; $exp/$tag/best not made by this run"
    cat $exp/$tag/RESULTS.md
    exit 0
  fi
  if ! has "$systems" baseline; then
    echo "no pooled baseline in --systems '$systems': $exp/$tag/best not made by this run"
    cat $exp/${tag}_loco/RESULTS.md
    exit 0
  fi
  # the back-end with the lowest mean development EER over the held-out corpora and the
  # --dev-conditions; the pooled baseline is the model a user gets, scored with it by default
  dev_results=()
  for d in $dev_conditions; do dev_results+=($(dev_exp $d)/RESULTS.json); done
  best_backend=$(steps/choose_backend.py --system baseline "${dev_results[@]}")
  steps/make_model_package.py --scoring-backend "$best_backend" --asnorm-top-n "$asnorm_top_n" \
    --lda-dim "$lda_dim" $exp/$tag/baseline/seed1 $data/train_all_clean
  ln -sfn baseline/seed1 $exp/$tag/best
  echo "best: $exp/$tag/best -> baseline/seed1, back-end $best_backend (chosen on loco development trials)"
  cat $exp/$tag/RESULTS.md $exp/${tag}_loco/RESULTS.md
fi
