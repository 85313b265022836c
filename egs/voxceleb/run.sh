#!/usr/bin/env bash
# VoxCeleb recipe of the DropClass / DropAdapt paper (Luu, Bell, Renals, Odyssey 2020), following
# Kaldi's egs/voxceleb/v2: train on VoxCeleb2 dev (augmented), test on VoxCeleb1 O/E/H (cleaned
# lists) and SITW dev/eval core-core.
#
#   bash run.sh --vox1-root /corpora/voxceleb1 --vox2-root /corpora/voxceleb2 \
#       --sitw-root /corpora/sitw --musan-root /corpora/musan --rir-root /corpora/RIRS_NOISES
#
# Every stage skips what is already done (remove the data/ or exp/ directory to redo it).
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh
. ./cmd.sh

stage=0
stop_stage=100
vox1_root=
vox2_root=
sitw_root=
musan_root=
rir_root=
vox1_lists=O,E,H
nj=8
feat_conf=conf/mfcc.yaml
vad_conf=conf/vad.yaml
aug_conf=conf/augment.yaml
adapt_conf=conf/dropadapt.yaml
min_frames=401
min_utts_per_spk=8
systems="baseline dropclass baseline_aam dropclass_aam"
train_opts=
adapt_opts=
device=cpu
lda_dim=200
help_message="Usage: bash run.sh [options]
VoxCeleb recipe (Kaldi voxceleb v2 + the DropClass/DropAdapt paper). Stages:
  0  prepare VoxCeleb2 dev (data/train), VoxCeleb1 (data/voxceleb1, trial dirs data/vox1_{O,E,H})
     and SITW dev/eval core-core (data/sitw_dev, data/sitw_eval; skipped without --sitw-root)
  1  prepare MUSAN (data/musan_{noise,music,speech}) and simulated RIRs (data/rirs_{small,medium}room)
  2  MFCC features and energy VAD of the training and evaluation data
  3  augmentation (reverb, noise, music, babble; conf/augment.yaml) of data/train -> data/train_aug,
     its features (the augmented audio is rendered there; the clean VAD is reused),
     data/train_combined = clean + augmented
  4  sliding CMN + silence removal (data/*_no_sil); enrolment dirs data/<set>_enrol
  5  filtering: utterances of fewer than --min-frames frames, speakers of fewer than
     --min-utts-per-spk utterances -> data/train_filtered
  6  train every system of --systems (conf/train_<system>.yaml) on data/train_filtered
  7  embeddings (training set for the back-end, evaluation sets), LDA+PLDA
  8  cosine and PLDA scores of every trial list
  9  DropAdapt of each system on each test set's enrolment side (conf/dropadapt.yaml), then
     embeddings, LDA+PLDA and scores of the adapted models (rows <system>_dropadapt)
  10 exp/RESULTS.md (relative to baseline) and exp/RESULTS_aam.md (relative to baseline_aam)
Corpus paths:
  --vox1-root DIR    VoxCeleb1: wav/SPK/VIDEO/NNNNN.wav + vox1_meta.csv (or dev/wav, test/wav), and
                     the lists veri_test2.txt, list_test_all2.txt, list_test_hard2.txt ($vox1_root)
  --vox2-root DIR    VoxCeleb2: dev/aac/SPK/VIDEO/NNNNN.m4a (decoded with ffmpeg) ($vox2_root)
  --sitw-root DIR    Speakers in the Wild: dev/ and eval/ with audio/, lists/, keys/ ($sitw_root)
  --musan-root DIR   MUSAN: noise/, music/, speech/ ($musan_root)
  --rir-root DIR     the RIRS_NOISES folder (openslr 28) with simulated_rirs/ ($rir_root)
Other options (default):
  --stage N ($stage)  --stop-stage M ($stop_stage)  --nj N ($nj)
  --vox1-lists L ($vox1_lists)   comma-separated VoxCeleb1 lists to evaluate
  --feat-conf FILE ($feat_conf)  --vad-conf FILE ($vad_conf)  --aug-conf FILE ($aug_conf)
  --adapt-conf FILE ($adapt_conf)
  --min-frames N ($min_frames)  --min-utts-per-spk N ($min_utts_per_spk)
  --systems \"S ...\" ($systems)   each trained with conf/train_S.yaml
  --train-opts \"...\" ($train_opts)   extra steps/train_xvector.py options, e.g. --set train.num_iters=10
  --adapt-opts \"...\" ($adapt_opts)   extra steps/dropadapt.py options, e.g. --set adapt.variant=combine
  --device D ($device)   device of embedding extraction and DropAdapt's p_avg  --lda-dim N ($lda_dim)"
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$help_message" >&2; exit 1; }

need() {  # need OPTION VALUE: a stage's corpus path must be given and exist
  [ -n "$2" ] || { echo "run.sh: stage $stage_now needs --$1" >&2; exit 1; }
  [ -d "$2" ] || { echo "run.sh: --$1 $2 is not a directory" >&2; exit 1; }
}
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] && stage_now=$1; }
stage_now=

# The evaluation data: VoxCeleb1 (features once for all its lists) and SITW when prepared.
eval_dirs() { echo voxceleb1; for s in sitw_dev sitw_eval; do [ -d data/$s ] && echo $s; done; return 0; }
# Trial sets: NAME TRIALS EMBEDDING-DIR-NAME (the data dir the embeddings were extracted from).
trial_sets() {
  for l in ${vox1_lists//,/ }; do echo "vox1_$l data/vox1_$l/trials voxceleb1"; done
  for s in sitw_dev sitw_eval; do [ -d data/$s ] && echo "$s data/$s/trials $s"; done
  return 0
}

if run_stage 0; then
  need vox2-root "$vox2_root"; need vox1-root "$vox1_root"
  make_voxceleb2.py "$vox2_root" data/train
  make_voxceleb1.py --lists "$vox1_lists" "$vox1_root" data
  if [ -n "$sitw_root" ]; then need sitw-root "$sitw_root"; make_sitw.py "$sitw_root" data; fi
  for d in train voxceleb1 $(trial_sets | awk '{print $1}'); do utils/validate_data_dir.py --no-file-check data/$d; done
fi

if run_stage 1; then
  need musan-root "$musan_root"; need rir-root "$rir_root"
  make_musan.py "$musan_root" data
  make_rirs.py "$rir_root" data
fi

if run_stage 2; then
  for d in train $(eval_dirs); do
    steps/make_features.py --nj $nj --feat-type mfcc --config $feat_conf data/$d mfcc exp/make_mfcc/$d
    steps/compute_vad.py --nj $nj --config $vad_conf data/$d mfcc/vad
  done
fi

if run_stage 3; then
  steps/augment_data_dir.py --config $aug_conf --musan-prefix data/musan --rir-prefix data/rirs data/train data/train_aug
  steps/make_features.py --nj $nj --feat-type mfcc --config $feat_conf data/train_aug mfcc exp/make_mfcc/train_aug
  [ -f data/train_combined/feats.scp ] || utils/combine_data.py data/train_combined data/train_aug data/train
fi

if run_stage 4; then
  steps/prepare_feats_for_egs.py --nj $nj data/train_combined data/train_combined_no_sil mfcc/no_sil
  for d in $(eval_dirs); do
    steps/prepare_feats_for_egs.py --nj $nj data/$d data/${d}_no_sil mfcc/no_sil
  done
  trial_sets | while read -r name trials emb; do
    if [ ! -f data/${name}_enrol/enrol.list ]; then
      utils/subset_data_dir.py --utt-list data/$name/enrol.list data/${emb}_no_sil data/${name}_enrol
      cut -d' ' -f1 data/${name}_enrol/utt2spk > data/${name}_enrol/.enrol.list.tmp
      mv data/${name}_enrol/.enrol.list.tmp data/${name}_enrol/enrol.list
    fi
  done
fi

if run_stage 5; then
  utils/filter_data_dir.py --min-frames $min_frames --min-utts-per-spk $min_utts_per_spk \
    data/train_combined_no_sil data/train_filtered
  # The back-end is trained on the clean training utterances (as Kaldi v2), not on the augmented copies.
  utils/subset_data_dir.py --utt-list data/train/utt2spk data/train_filtered data/train_backend
  utils/validate_data_dir.py --require-feats data/train_filtered
fi

if run_stage 6; then
  for sys in $systems; do
    # shellcheck disable=SC2086
    steps/train_xvector.py --config conf/train_$sys.yaml --dir exp/$sys $train_opts data/train_filtered
  done
fi

if run_stage 7; then
  for sys in $systems; do
    steps/extract_embeddings.py --device $device exp/$sys/final.pt data/train_backend exp/$sys/xvectors_train
    for d in $(eval_dirs); do
      steps/extract_embeddings.py --device $device exp/$sys/final.pt data/${d}_no_sil exp/$sys/xvectors_$d
    done
    steps/train_plda.py --lda-dim $lda_dim exp/$sys/xvectors_train/xvector.scp data/train_backend/utt2spk exp/$sys/plda
  done
fi

if run_stage 8; then
  for sys in $systems; do
    trial_sets | while read -r name trials emb; do
      scp=exp/$sys/xvectors_$emb/xvector.scp
      steps/score_trials.py --backend cosine --mean-scp exp/$sys/xvectors_train/xvector.scp --set-name $name \
        $trials $scp $scp exp/$sys/scores_${name}_cosine
      steps/score_trials.py --backend plda --plda-dir exp/$sys/plda --set-name $name \
        $trials $scp $scp exp/$sys/scores_${name}_plda
    done
  done
fi

if run_stage 9; then
  # DropAdapt (METHOD.md) of every system towards each test set's enrolment utterances; the adapted
  # model scores that set only. Rows "<system>_dropadapt" in the results.
  for sys in $systems; do
    trial_sets | while read -r name trials emb; do
      adir=exp/${sys}_dropadapt/adapt_$name
      # shellcheck disable=SC2086
      steps/dropadapt.py --config $adapt_conf --device $device $adapt_opts exp/$sys/final.pt data/train_filtered \
        data/${name}_enrol $adir
      steps/extract_embeddings.py --device $device $adir/final.pt data/train_backend $adir/xvectors_train
      steps/extract_embeddings.py --device $device $adir/final.pt data/${emb}_no_sil $adir/xvectors_$emb
      steps/train_plda.py --lda-dim $lda_dim $adir/xvectors_train/xvector.scp data/train_backend/utt2spk $adir/plda
      scp=$adir/xvectors_$emb/xvector.scp
      steps/score_trials.py --backend cosine --mean-scp $adir/xvectors_train/xvector.scp --set-name $name \
        $trials $scp $scp exp/${sys}_dropadapt/scores_${name}_cosine
      steps/score_trials.py --backend plda --plda-dir $adir/plda --set-name $name \
        $trials $scp $scp exp/${sys}_dropadapt/scores_${name}_plda
    done
  done
fi

if run_stage 10; then
  steps/make_results_table.py --baseline baseline exp
  case " $systems " in
    *" baseline_aam "*)
      steps/make_results_table.py --baseline baseline_aam --out-md exp/RESULTS_aam.md --out-json exp/RESULTS_aam.json exp ;;
  esac
fi
echo "run.sh: done (stages $stage..$stop_stage)"
