#!/usr/bin/env bash
# VoxCeleb recipe of the DropClass / DropAdapt paper (Luu, Bell, Renals, Odyssey 2020), following
# Kaldi's egs/voxceleb/v2: train on VoxCeleb2 dev (augmented), test on VoxCeleb1 O/E/H (cleaned
# lists) and SITW dev/eval core-core.
#
#   bash run.sh --vox1-root /corpora/voxceleb1 --vox2-root /corpora/voxceleb2 \
#       --sitw-root /corpora/sitw --musan-root /corpora/musan --rir-root /corpora/RIRS_NOISES
#
# Every stage skips what is already done (remove the data/ or exp/ directory to redo it).
# Jobs are dispatched as Kaldi's (cmd.sh): the parallel stages (features, VAD, the feature jobs
# that render the augmentation, CMN, embeddings) split their data into --nj jobs run through
# $train_cmd (embeddings through $cuda_cmd unless --device cpu); each training and DropAdapt run
# is one $cuda_cmd job, with --num-gpus N a torchrun of N processes (DDP) on N GPUs. Scoring
# runs in this process (a VoxCeleb1-E list in about a second: README, "Jobs").
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
device=auto               # torch device of every step: auto (cuda when available), cpu, cuda
num_gpus=1                # processes (GPUs) per training: N > 1 runs torchrun --nproc_per_node N
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
  7  model packages: clean training embeddings, LDA+PLDA, cohort (steps/make_model_package.py)
  8  cosine and PLDA scores of every trial list (steps/evaluate_model.py)
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
  --device D ($device)   device of embedding extraction and DropAdapt's p_avg  --lda-dim N ($lda_dim)
  --num-gpus N ($num_gpus)   each training is one \$cuda_cmd --gpu N job; N > 1: torchrun, N processes (DDP)"
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$help_message" >&2; exit 1; }

need() {  # need OPTION VALUE: a stage's corpus path must be given and exist
  [ -n "$2" ] || { echo "run.sh: stage $stage_now needs --$1" >&2; exit 1; }
  [ -d "$2" ] || { echo "run.sh: --$1 $2 is not a directory" >&2; exit 1; }
}
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] && stage_now=$1; }
stage_now=
[[ $num_gpus =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --num-gpus takes a positive number, got '$num_gpus'" >&2; exit 1; }

# Embedding jobs: on CPU through $train_cmd (Kaldi's sid/extract_xvectors.sh), one CUDA device
# per job through $cuda_cmd otherwise.
if [ "$device" = cpu ]; then extract_cmd=$train_cmd; else extract_cmd=$cuda_cmd; fi
# A training: one process, or torchrun's N (DDP: data.batch_size stays the global batch).
if [ "$num_gpus" -gt 1 ]; then
  train_launcher="torchrun --standalone --nproc_per_node $num_gpus"
else
  train_launcher=
fi
. utils/gpu_job.sh  # gpu_job N LOG COMMAND...: one $cuda_cmd job on N GPUs, its error shown when it fails

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
    steps/make_features.py --nj $nj --cmd "$train_cmd" --feat-type mfcc --config $feat_conf data/$d mfcc exp/make_mfcc/$d
    steps/compute_vad.py --nj $nj --cmd "$train_cmd" --config $vad_conf data/$d mfcc/vad
  done
fi

if run_stage 3; then
  steps/augment_data_dir.py --config $aug_conf --musan-prefix data/musan --rir-prefix data/rirs data/train data/train_aug
  steps/make_features.py --nj $nj --cmd "$train_cmd" --feat-type mfcc --config $feat_conf data/train_aug mfcc exp/make_mfcc/train_aug
  utils/combine_data.py data/train_combined data/train_aug data/train
fi

if run_stage 4; then
  steps/prepare_feats_for_egs.py --nj $nj --cmd "$train_cmd" data/train_combined data/train_combined_no_sil mfcc/no_sil
  for d in $(eval_dirs); do
    steps/prepare_feats_for_egs.py --nj $nj --cmd "$train_cmd" data/$d data/${d}_no_sil mfcc/no_sil
  done
  trial_sets | while read -r name trials emb; do
    utils/subset_data_dir.py --utt-list data/$name/enrol.list data/${emb}_no_sil data/${name}_enrol
    # replaced only when it changed: DropAdapt records enrol.list's identity
    cut -d' ' -f1 data/${name}_enrol/utt2spk > data/${name}_enrol/.enrol.list.tmp
    if cmp -s data/${name}_enrol/.enrol.list.tmp data/${name}_enrol/enrol.list; then
      rm data/${name}_enrol/.enrol.list.tmp
    else
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
    # --resume: an interrupted training continues from its newest checkpoint
    # shellcheck disable=SC2086
    gpu_job $num_gpus exp/$sys/log/train_xvector.log $train_launcher steps/train_xvector.py --config conf/train_$sys.yaml \
      --resume $train_opts data/train_filtered exp/$sys
  done
fi

# The evaluation chain every recipe shares: a model package per model (frontend.yaml, clean
# training embeddings, LDA+PLDA, cohort with the training mean), then each trial list scored
# with cosine (after the training mean) and PLDA.
package() {  # MODEL_DIR
  steps/make_model_package.py --frontend-data data/train --vad-conf $vad_conf --cmn-window 300 \
    --lda-dim $lda_dim --device $device --nj $nj --cmd "$extract_cmd" $1 data/train_backend
}
evaluate() {  # MODEL_DIR TRIAL_SET TRIALS EMB_SET OUT_DIR
  steps/evaluate_model.py --backends cosine,plda --device $device --nj $nj --cmd "$extract_cmd" --set-name $2 \
    --trials $3 --emb-dir $1/xvectors_$4 $1 data/${4}_no_sil $5
}

if run_stage 7; then
  for sys in $systems; do package exp/$sys; done
fi

if run_stage 8; then
  for sys in $systems; do
    trial_sets | while read -r name trials emb; do evaluate exp/$sys $name $trials $emb exp/$sys; done
  done
fi

if run_stage 9; then
  # DropAdapt of every system towards each test set's enrolment utterances; the adapted
  # model scores that set only. Rows "<system>_dropadapt" in the results.
  for sys in $systems; do
    trial_sets | while read -r name trials emb; do
      adir=exp/${sys}_dropadapt/adapt_$name
      # shellcheck disable=SC2086
      gpu_job 1 $adir/log/dropadapt.log steps/dropadapt.py --config $adapt_conf --device $device $adapt_opts \
        exp/$sys/final.pt data/train_filtered data/${name}_enrol $adir
      package $adir
      evaluate $adir $name $trials $emb exp/${sys}_dropadapt
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
