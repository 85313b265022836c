"""The default recipe's parallel stages really go through cmd.sh's job runners: the reduced
egs/synthetic/run.sh with train_cmd and cuda_cmd set to utils/slurm.sh, against a fake sbatch
that records every submission. Each stage must appear as its own array job of --nj tasks (the
training and DropAdapt runs as one job asking for a GPU), and the recipe must still finish."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from test_recipe_freshness import OPTIONS, RECIPE, TINY, _write_conf

FAKE_SBATCH = """#!/usr/bin/env bash
# Appends its arguments, one line per submission, to $FAKE_SBATCH_CALLS, prints a job id
# (--parsable), then runs the tasks of --array=A-B at once and waits for them (--wait).
echo "$*" >> "$FAKE_SBATCH_CALLS"
echo 4242
for a in "$@"; do case "$a" in --array=*) r=${a#--array=}; r=${r%%\\%*} ;; esac; done
pids=()
for ((i = ${r%-*}; i <= ${r#*-}; i++)); do SLURM_ARRAY_TASK_ID=$i "${!#}" & pids+=($!); done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
"""

CMD_SH = """# Slurm, as a cluster's cmd.sh would say (sbatch is the test's fake).
export train_cmd="utils/slurm.sh --mem 2G"
export cuda_cmd="utils/slurm.sh --gpu 1 --mem 4G"
"""

NJ = 2


def submissions(calls: Path) -> dict[str, tuple[str, str]]:
    """Per submitted job, by its Slurm output directory and job name ('exp/baseline/seed0/log/q/
    train_xvector'): its --array range and its --gres ('' when it asked for no GPU)."""
    jobs = {}
    for line in calls.read_text().splitlines():
        output = re.search(r"--output=(\S+)/(\S+)\.%a\.out", line)
        array = re.search(r"--array=(\S+)", line)
        gres = re.search(r"--gres=(\S+)", line)
        key = f"{output.group(1)}/{output.group(2)}"
        assert key not in jobs, f"{key} submitted twice"
        jobs[key] = (array.group(1), gres.group(1) if gres else "")
    return jobs


@pytest.mark.slow
def test_every_parallel_stage_and_training_runs_through_cmd_sh(tmp_path):
    work = tmp_path / "synthetic"
    (work / "conf").mkdir(parents=True)
    for name in ("run.sh", "path.sh", "local", "steps", "utils"):
        (work / name).symlink_to(RECIPE / name)
    (work / "cmd.sh").write_text(CMD_SH)
    for conf in (RECIPE / "conf").iterdir():
        if conf.name in TINY:
            _write_conf(work, conf.name, TINY[conf.name])
        else:
            (work / "conf" / conf.name).symlink_to(conf)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text(FAKE_SBATCH)
    (bindir / "sbatch").chmod(0o755)
    calls = tmp_path / "sbatch.calls"
    env = dict(os.environ, OMP_NUM_THREADS="1", FAKE_SBATCH_CALLS=str(calls), PATH=f"{bindir}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", "run.sh", *OPTIONS, "--nj", str(NJ)], cwd=work, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert (work / "exp" / "RESULTS.md").is_file()

    jobs = submissions(calls)
    expected = {}
    for x in ("train", "test"):  # features, VAD, CMN + silence removal
        expected[f"data/{x}/log/q/job_raw_mfcc_{x}.array"] = (f"1-{NJ}", "")
        expected[f"mfcc/log/q/job_vad_{x}.array"] = (f"1-{NJ}", "")
        no_sil = f"{x}_no_sil_unfiltered" if x == "train" else f"{x}_no_sil"
        expected[f"mfcc/log/q/job_xvector_feats_{no_sil}.array"] = (f"1-{NJ}", "")
    for system in ("baseline", "dropclass", "dropadapt"):  # one GPU job each, then the embeddings
        seed = f"exp/{system}/seed0"
        step = "dropadapt" if system == "dropadapt" else "train_xvector"
        expected[f"{seed}/log/q/{step}"] = ("1-1", "gpu:1")
        for emb in ("xvectors_train", "xvectors_test"):
            expected[f"{seed}/{emb}/log/q/job_xvector_job.array"] = (f"1-{NJ}", "")
    for how in ("mean", "plda"):  # back-end adaptation: one CPU job each, then the test embeddings
        seed = f"exp/backend_{how}/seed0"
        expected[f"{seed}/log/q/adapt_model"] = ("1-1", "")
        expected[f"{seed}/xvectors_test/log/q/job_xvector_job.array"] = (f"1-{NJ}", "")
    assert jobs == expected, sorted(set(jobs.items()) ^ set(expected.items()))
    for key, (array, _) in jobs.items():  # each task wrote its runner's log, ended well
        log_dir, name = key.split("/q/")
        for task in range(1, int(array.split("-")[1]) + 1):
            log = work / log_dir / (name.replace("array", str(task)) + ".log")
            assert "# Ended (code 0) at " in log.read_text(), log
