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
# The parallel steps take --cmd "$train_cmd"; a multi-GPU training is one job:
#   $cuda_cmd --gpu 8 exp/xvector/log/train.log torchrun --nproc_per_node 8 steps/train_xvector.py ...
export train_cmd="utils/run.sh"
export cmd="utils/run.sh"
export cuda_cmd="utils/run.sh"
