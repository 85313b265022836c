#!/usr/bin/env bash
# Real-speech benchmark: baseline vs DropClass vs DropAdapt on the two shared corpora
# (Arabic Speech Commands, DSPSpeech-20; 1-2 s isolated words), see README.md.
#
#   bash egs/realspeech/run.sh                          # everything, 3 seeds, real speakers only
#   bash egs/realspeech/run.sh --with-synthetic true    # the same, training pooled with the synthetic corpus
#   bash egs/realspeech/run.sh --stage 4 --stop-stage 5
#
# Every stage skips work that is already done; remove data/ or exp/<tag>/<system> to redo it.
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")"
. ./path.sh
. ./cmd.sh

stage=0
stop_stage=100
data_root=$DROPCLASS_ROOT/../shared/data   # holds arabic_speech_commands/ and dspspeech20/
work_dir=.                # where data/, mfcc/, exp/ (and corpus/) go; relative to this recipe's folder
with_synthetic=false      # pool the synthetic corpus's training speakers with the real ones
seeds=3                   # training seeds per system; the table reports mean ± std
nj=2                      # parallel jobs for features and VAD
feat_conf=$DROPCLASS_ROOT/conf/mfcc.yaml
vad_conf=conf/vad.yaml    # tuned for 1-2 s words (see README.md)
corpus_conf=$DROPCLASS_ROOT/conf/synthetic_corpus.yaml
baseline_conf=conf/train_baseline.yaml
dropclass_conf=conf/train_dropclass.yaml
dropadapt_conf=conf/dropadapt.yaml
min_frames=30             # voiced frames an utterance needs to be kept (Kaldi's voxceleb: 400)
min_utts_per_spk=8        # training speakers with fewer utterances are dropped
lda_dim=64                # LDA dimension before PLDA (at most #training speakers - 1)
cmn_window=300            # sliding CMN window, frames (longer than any utterance here: per-utterance CMN)
extract_min_frames=25     # shorter test inputs are padded cyclically to this many frames before embedding
help_message="Usage: bash egs/realspeech/run.sh [options]
Baseline, DropClass and DropAdapt on real short-utterance speech (Arabic Speech Commands and
DSPSpeech-20 from --data-root); held-out speakers of each corpus form its test set, trials are
scored within a corpus only. Exits 0 with a message when the corpora are not there.
Stages:
  0  prepare both corpora (speaker-disjoint train/test, trials), ids prefixed asc-/dsp-
     (and the synthetic corpus, prefixed syn-, with --with-synthetic true)
  1  MFCC, energy VAD, sliding CMN + silence removal, filtering; the MFCC mean+std cosine floor
  2  pool the training speakers; train baseline and DropClass extractors (--seeds K each)
  3  DropAdapt each baseline towards each test set's enrolment utterances (no labels)
  4  embeddings, LDA+PLDA on the pooled training speakers, cosine and PLDA scores per test set
  5  exp/<tag>/RESULTS.md (and .json): mean ± std over seeds per corpus, back-end and system
Options (default):
  --stage N ($stage)  --stop-stage M ($stop_stage)  --nj N ($nj)  --seeds K ($seeds)
  --data-root DIR ($data_root)  --work-dir DIR ($work_dir)
  --with-synthetic true|false ($with_synthetic)
  --feat-conf FILE ($feat_conf)  --vad-conf FILE ($vad_conf)  --corpus-conf FILE ($corpus_conf)
  --baseline-conf FILE ($baseline_conf)  --dropclass-conf FILE ($dropclass_conf)
  --dropadapt-conf FILE ($dropadapt_conf)
  --min-frames N ($min_frames)  --min-utts-per-spk N ($min_utts_per_spk)  --lda-dim N ($lda_dim)
  --cmn-window N ($cmn_window)  --extract-min-frames N ($extract_min_frames)"
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$help_message" >&2; exit 1; }
case $data_root in /*) ;; *) data_root=$caller_dir/$data_root ;; esac
data=$work_dir/data
mfcc=$work_dir/mfcc

# frontend.yaml beside a model (the features, VAD and CMN it was trained with), read by
# steps/score_corpus.py to score a new corpus with the same front end.
write_frontend() { utils/write_frontend.sh $data/asc_train/feats_config.yaml "$vad_conf" $cmn_window "$1"; }

corpora="asc dsp"
declare -A corpus_dir=([asc]=arabic_speech_commands [dsp]=dspspeech20)
declare -A prep_script=([asc]=local/prepare_arabic_speech_commands.py [dsp]=local/prepare_dspspeech20.py)

missing=()
for c in $corpora; do
  [ -d "$data_root/${corpus_dir[$c]}" ] || missing+=("$data_root/${corpus_dir[$c]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "$0: skipping the real-speech recipe: corpus folder(s) not found: ${missing[*]}" \
       "(set --data-root to the folder holding arabic_speech_commands/ and dspspeech20/; see ../shared/data/README.md)"
  exit 0
fi

if $with_synthetic; then tag=real_synth; train_sets="asc dsp syn"; else tag=real; train_sets="asc dsp"; fi
exp=$work_dir/exp/$tag
train=$data/train_$tag
mkdir -p "$exp"
seed_list=$(seq 1 "$seeds")

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  # The held-out speakers: Arabic Speech Commands' authors' 6 test speakers (test.csv), and 8 of
  # the 34 DSPSpeech-20 speakers drawn with seed 0 (the preparation scripts' defaults).
  for c in $corpora; do
    if [ ! -f $data/${c}_test/trials ]; then
      "${prep_script[$c]}" "$data_root/${corpus_dir[$c]}" $data/${c}_orig
      for part in train test; do
        utils/copy_data_dir.py --utt-prefix $c- --spk-prefix $c- $data/${c}_orig/$part $data/${c}_$part
      done
    fi
  done
  if $with_synthetic && [ ! -f $data/syn_train/spk2utt ]; then
    local/make_synthetic_corpus.py --config "$corpus_conf" --nj "$nj" $work_dir/corpus/synthetic $data/syn_orig
    utils/copy_data_dir.py --utt-prefix syn- --spk-prefix syn- $data/syn_orig/train $data/syn_train
  fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  sets=""
  for c in $train_sets; do sets="$sets ${c}_train"; done
  for c in $corpora; do sets="$sets ${c}_test"; done
  for s in $sets; do
    [ -f $data/${s}_no_sil/feats.scp ] && continue
    steps/make_features.py --nj "$nj" --config "$feat_conf" $data/$s $mfcc/$s
    steps/compute_vad.py --nj "$nj" --config "$vad_conf" $data/$s $mfcc/$s
    steps/prepare_feats_for_egs.py --nj "$nj" --cmn-window "$cmn_window" $data/$s $data/${s}_no_sil $mfcc/$s
  done
  for c in $corpora; do
    [ -f $exp/mfcc_floor/scores_${c}_test/metrics.json ] || \
      steps/score_mfcc_floor.py $data/${c}_test $exp/mfcc_floor/scores_${c}_test
  done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  if [ ! -f $train/spk2utt ]; then
    srcs=""
    for c in $train_sets; do srcs="$srcs $data/${c}_train_no_sil"; done
    # shellcheck disable=SC2086
    utils/combine_data.py ${train}_all $srcs
    utils/filter_data_dir.py --min-frames "$min_frames" --min-utts-per-spk "$min_utts_per_spk" ${train}_all $train
  fi
  for seed in $seed_list; do
    for system in baseline dropclass; do
      conf=$baseline_conf; [ $system = baseline ] || conf=$dropclass_conf
      [ -f $exp/$system/seed$seed/final.pt ] || \
        steps/train_xvector.py --config "$conf" --seed "$seed" --dir $exp/$system/seed$seed $train
      write_frontend $exp/$system/seed$seed
    done
  done
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  # DropAdapt is unsupervised adaptation to one evaluation set: one adapted model per test corpus,
  # kept outside exp/$tag/dropadapt/ so that only its scores form the DropAdapt row.
  for seed in $seed_list; do
    for c in $corpora; do
      dir=$exp/dropadapt_models/${c}_seed$seed
      [ -f $dir/final.pt ] || steps/dropadapt.py --config "$dropadapt_conf" --set adapt.seed="$seed" \
        $exp/baseline/seed$seed/final.pt $train $data/${c}_test_no_sil $dir
      write_frontend $dir
    done
  done
fi

# The model that scores test corpus $2 for system $1 and seed $3 (DropAdapt is adapted per corpus).
model_dir() { case $1 in dropadapt) echo $exp/dropadapt_models/$2_seed$3 ;; *) echo $exp/$1/seed$3 ;; esac; }

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  for seed in $seed_list; do
    for system in baseline dropclass dropadapt; do
      for c in $corpora; do
        mdir=$(model_dir $system $c $seed)
        out=$exp/$system/seed$seed
        # Training-speaker embeddings and the PLDA are per model: made once, shared by both corpora.
        if [ ! -f $mdir/plda/plda.npz ]; then
          steps/extract_embeddings.py --min-frames "$extract_min_frames" $mdir/final.pt $train $mdir/xvectors_train
          steps/train_plda.py --lda-dim "$lda_dim" $mdir/xvectors_train/xvector.scp $train/utt2spk $mdir/plda
        fi
        scp=$mdir/xvectors_${c}_test/xvector.scp
        [ -f $scp ] || steps/extract_embeddings.py --min-frames "$extract_min_frames" $mdir/final.pt \
          $data/${c}_test_no_sil $mdir/xvectors_${c}_test
        [ -f $out/scores_${c}_test_cosine/metrics.json ] || steps/score_trials.py --backend cosine \
          --set-name ${c}_test --mean-scp $mdir/xvectors_train/xvector.scp \
          $data/${c}_test_no_sil/trials $scp $scp $out/scores_${c}_test_cosine
        [ -f $out/scores_${c}_test_plda/metrics.json ] || steps/score_trials.py --backend plda \
          --plda-dir $mdir/plda --set-name ${c}_test \
          $data/${c}_test_no_sil/trials $scp $scp $out/scores_${c}_test_plda
      done
    done
  done
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  steps/make_results_table.py --baseline baseline --order baseline,dropclass,dropadapt $exp
  cat $exp/RESULTS.md
fi
