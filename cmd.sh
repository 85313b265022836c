# Job-dispatch commands, as in Kaldi's cmd.sh. Recipes call
#   $train_cmd JOB=1:$nj exp/log/job.JOB.log command args...
# run.pl-style local execution is the default. On a Slurm cluster, use instead e.g.:
#   export train_cmd="utils/slurm.pl --mem 4G"
#   export cuda_cmd="utils/slurm.pl --gpu 1 --mem 16G"
# (slurm.pl submits each job with sbatch and waits; see utils/slurm.pl --help).
export train_cmd="utils/run.pl"
export cmd="utils/run.pl"
export cuda_cmd="utils/run.pl"
