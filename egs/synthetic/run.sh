#!/usr/bin/env bash
# The default recipe: the whole DropClass / DropAdapt pipeline on the embedded synthetic corpus
# (generated here with eSpeak NG; no download), in minutes on 2 CPU cores.
#
#   cd egs/synthetic && bash run.sh     # everything; data/, mfcc/, corpus/, exp/ go here
#   bash run.sh --stage 4 --stop-stage 5
#   bash run.sh --seeds 3               # train every system with 3 seeds, report mean ± std
#
# It runs in the current directory, as Kaldi recipes do: that directory holds path.sh, cmd.sh,
# conf/, local/, steps/ and utils/ (this folder, or the project root, whose run.sh runs this
# recipe there). Every stage redoes exactly what its inputs or settings changed (README,
# "Freshness"); a trained system whose configuration changed is an error naming the keys.
# Jobs are dispatched as Kaldi's (cmd.sh): features, VAD, CMN and embeddings split their data into
# --nj jobs run through $train_cmd; each training and DropAdapt run is one $cuda_cmd job whose
# output goes to its log (exp/SYSTEM/seedK/log/); scoring runs in this process.
set -euo pipefail
[ -f ./path.sh ] && [ -d ./conf ] || {
  echo "ERROR ($0): run it from a recipe directory (with path.sh and conf/), e.g. cd egs/synthetic" >&2; exit 1; }
. ./path.sh
. ./cmd.sh

stage=0
stop_stage=100
nj=2                      # parallel jobs for corpus generation, features, VAD, CMN and embeddings
seeds=1                   # training seeds per system
corpus_conf=conf/synthetic_corpus.yaml
feat_conf=conf/mfcc.yaml
vad_conf=conf/vad.yaml
baseline_conf=conf/train_baseline.yaml
dropclass_conf=conf/train_dropclass.yaml
dropadapt_conf=conf/dropadapt.yaml
dropadapt_variants=standard  # any of: standard combine uniform_agg random only_data (space-separated)
adapt_from=baseline       # the trained system DropAdapt (and back-end adaptation) starts from
backend_adapt=""          # DropAdapt's competitor: back-end adaptation of --adapt-from to the same enrolment
                          # utterances, any of: mean (re-centring) plda (Kaldi's ivector-adapt-plda) both
min_frames=200            # utterances shorter than this (after silence removal) are dropped
min_utts_per_spk=4        # training speakers with fewer utterances are dropped
lda_dim=128               # LDA dimension before PLDA (Kaldi voxceleb: 200)
cmn_window=300            # sliding CMN window in frames (Kaldi: 300)
corpus=corpus/synthetic   # where the generated audio goes
overwrite=false           # true: retrain/re-adapt a system whose configuration, data or code changed
help_message="Usage: bash run.sh [options]
Runs the DropClass/DropAdapt recipe on the embedded synthetic corpus.
Stages:
  0  generate the synthetic corpus (audio + data/train, data/test, trials)
  1  MFCC features, energy VAD, sliding CMN + silence removal, filtering; MFCC floor
  2  train the baseline and DropClass extractors (--seeds K seeds each)
  3  DropAdapt each trained model towards the test enrolment utterances
  4  model packages (embeddings, LDA+PLDA, cohort), cosine and PLDA scores for every system;
     back-end adaptation (--backend-adapt) of each --adapt-from package to the same utterances
  5  exp/RESULTS.md (and RESULTS.json): EER, minDCF@0.01, minDCF@0.001 per system
Options (default):
  --stage N ($stage)  --stop-stage M ($stop_stage)  --nj N ($nj)  --seeds K ($seeds)
  --corpus-conf FILE ($corpus_conf)  --feat-conf FILE ($feat_conf)  --vad-conf FILE ($vad_conf)
  --baseline-conf FILE ($baseline_conf)  --dropclass-conf FILE ($dropclass_conf)
  --dropadapt-conf FILE ($dropadapt_conf)  --dropadapt-variants \"LIST\" ($dropadapt_variants)
  --adapt-from SYSTEM ($adapt_from)  --backend-adapt \"LIST\" ($backend_adapt)  --min-frames N ($min_frames)
  --min-utts-per-spk N ($min_utts_per_spk)  --lda-dim N ($lda_dim)  --cmn-window N ($cmn_window)
  --corpus DIR ($corpus)  --overwrite true|false ($overwrite: a trained system whose
  configuration, data or code changed is an error naming what differs unless true)"
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$help_message" >&2; exit 1; }


data=data
exp=exp
seed_list=$(seq 0 $((seeds - 1)))
declare -A train_conf=([baseline]=$baseline_conf [dropclass]=$dropclass_conf)
case $overwrite in true) overwrite_opt=--overwrite ;; false) overwrite_opt= ;;
  *) echo "ERROR ($0): --overwrite takes true or false, got '$overwrite'" >&2; exit 1 ;; esac

for how in $backend_adapt; do
  case $how in mean|plda|both) ;; *) echo "ERROR ($0): unknown --backend-adapt '$how' (mean, plda or both)" >&2; exit 1 ;; esac
done

# adapted system name for a DropAdapt variant: "dropadapt" for standard, "dropadapt_<variant>" otherwise
adapted_name() { if [ "$1" = standard ]; then echo dropadapt; else echo "dropadapt_$1"; fi; }
# system names in results order: the trained ones, the DropAdapt variants, the back-end adaptations
system_names() {
  printf "%s\n" baseline dropclass
  for variant in $dropadapt_variants; do adapted_name $variant; done
  for how in $backend_adapt; do echo "backend_$how"; done
}

. utils/gpu_job.sh  # gpu_job N LOG COMMAND...: one $cuda_cmd job on N GPUs, its error shown when it fails

# The evaluation chain every recipe shares: complete the model dir into a model package
# (frontend.yaml, training embeddings, LDA+PLDA, cohort with the training mean), then score the
# test trials with cosine after the training mean, cosine after the test set's own mean (as the
# MFCC floor does) and PLDA.
make_package() {
  steps/make_model_package.py --frontend-data $data/train --vad-conf $vad_conf --cmn-window $cmn_window \
    --lda-dim $lda_dim --nj $nj --cmd "$train_cmd" "$1" $data/train_no_sil
}
score_package() {
  steps/evaluate_model.py --backends cosine,cosine_dm,plda --nj $nj --cmd "$train_cmd" --set-name test \
    --emb-dir "$1/xvectors_test" "$1" $data/test_no_sil "$1"
}

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "== stage 0: synthetic corpus ($corpus_conf)"
  local/make_synthetic_corpus.py --config $corpus_conf --nj $nj $corpus $data
  for x in train test; do utils/validate_data_dir.py $data/$x; done
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "== stage 1: features, VAD, CMN + silence removal, filtering"
  for x in train test; do
    steps/make_features.py --nj $nj --cmd "$train_cmd" --config $feat_conf $data/$x mfcc
    steps/compute_vad.py --nj $nj --cmd "$train_cmd" --config $vad_conf $data/$x mfcc
    utils/validate_data_dir.py --require-feats $data/$x
  done
  steps/score_mfcc_floor.py $data/test $exp/mfcc_floor/scores_test
  steps/prepare_feats_for_egs.py --nj $nj --cmd "$train_cmd" --cmn-window $cmn_window $data/train $data/train_no_sil_unfiltered mfcc
  steps/prepare_feats_for_egs.py --nj $nj --cmd "$train_cmd" --cmn-window $cmn_window $data/test $data/test_no_sil mfcc
  utils/filter_data_dir.py --min-frames $min_frames --min-utts-per-spk $min_utts_per_spk \
    $data/train_no_sil_unfiltered $data/train_no_sil
  for x in train_no_sil test_no_sil; do utils/validate_data_dir.py --require-feats $data/$x; done
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "== stage 2: train baseline and DropClass extractors (seeds: $seed_list)"
  for system in baseline dropclass; do
    for seed in $seed_list; do
      # --resume: an interrupted training continues from its newest checkpoint
      gpu_job 1 $exp/$system/seed$seed/log/train_xvector.log steps/train_xvector.py --config ${train_conf[$system]} \
        --seed $seed --resume $overwrite_opt $data/train_no_sil $exp/$system/seed$seed
    done
  done
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "== stage 3: DropAdapt ($dropadapt_variants) from $adapt_from towards the test enrolment side"
  for variant in $dropadapt_variants; do
    for seed in $seed_list; do
      out=$exp/$(adapted_name $variant)/seed$seed
      gpu_job 1 $out/log/dropadapt.log steps/dropadapt.py --config $dropadapt_conf --set adapt.variant=$variant \
        --set adapt.seed=$seed $overwrite_opt $exp/$adapt_from/seed$seed/final.pt $data/train_no_sil \
        $data/test_no_sil $out
    done
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "== stage 4: embeddings, LDA+PLDA, cosine and PLDA scoring; back-end adaptation (${backend_adapt:-none})"
  for system in $(system_names); do
    [[ $system == backend_* ]] && continue
    for seed in $seed_list; do make_package $exp/$system/seed$seed; score_package $exp/$system/seed$seed; done
  done
  # The adapted package is complete as adapt_model.py leaves it: only scored. One job, whose
  # --nj feature and embedding jobs run inside it on as many threads.
  for how in $backend_adapt; do
    for seed in $seed_list; do
      out=$exp/backend_$how/seed$seed
      $train_cmd --num-threads $nj $out/log/adapt_model.log steps/adapt_model.py --dropadapt false \
        --backend-adapt $how --nj $nj $overwrite_opt $exp/$adapt_from/seed$seed $data/train_no_sil $data/test $out \
        || { tail -n 3 $out/log/adapt_model.log >&2; exit 1; }
      score_package $out
    done
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  echo "== stage 5: results"
  order=$(system_names | paste -sd, -)
  columns=eer,min_dcf_0.01,min_dcf_0.001,delta_eer
  [ "$seeds" -eq 1 ] || columns=$columns,paired_delta_eer   # each seed against the baseline of its seed
  steps/make_results_table.py --baseline baseline --order $order --columns $columns $exp
  cat $exp/RESULTS.md
fi
