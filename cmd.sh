# Job-dispatch commands, as in Kaldi's cmd.sh. Recipes call
#   $train_cmd JOB=1:$nj exp/log/job.JOB.log command args...
# utils/run.sh runs the jobs on this machine, in parallel (see utils/run.sh --help); it accepts
# and ignores --mem/--gpu/--time/--num-threads, so the options below can stay on locally.
# On a Slurm cluster, submit instead with utils/slurm.sh (one "sbatch --wait" array job per
# call; see utils/slurm.sh --help), e.g.:
#   export train_cmd="utils/slurm.sh --mem 4G --time 4:00:00"
#   export cmd="utils/slurm.sh --mem 2G"
#   export cuda_cmd="utils/slurm.sh --gpu 1 --mem 16G --num-threads 4 --time 48:00:00"
# (partition and account come from sbatch's environment: export SBATCH_PARTITION=...).
# How the recipes use them:
#   train_cmd  the --nj jobs of the parallel steps (--cmd "$train_cmd"): features (and the
#              augmented audio they render), VAD, CMN, and embeddings on the CPU
#   cuda_cmd   each training and DropAdapt run, one job; embeddings on a GPU (egs/voxceleb
#              unless --device cpu). A multi-GPU training is one job asking for N GPUs (a later
#              --gpu overrides this file's):
#   $cuda_cmd --gpu 8 exp/xvector/log/train_xvector.log torchrun --standalone --nproc_per_node 8 steps/train_xvector.py ...
#              (egs/voxceleb/run.sh --num-gpus 8)
# Scoring runs inside evaluate_model.py, not as jobs.
export train_cmd="utils/run.sh"
export cmd="utils/run.sh"
export cuda_cmd="utils/run.sh"
