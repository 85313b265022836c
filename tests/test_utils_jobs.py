"""utils/run.sh (local parallel jobs) and utils/slurm.sh (with a fake sbatch on PATH)."""

from __future__ import annotations

import os
import time

import pytest

from conftest import run_tool

FAKE_SBATCH = """#!/usr/bin/env bash
# Records its arguments, prints a job id (--parsable), then runs the tasks of --array=A-B[%M]
# one after the other.
printf '%s\\n' "$@" > "$FAKE_SBATCH_ARGS"
echo 4242
for a in "$@"; do case "$a" in --array=*) r=${a#--array=}; r=${r%%\\%*} ;; esac; done
status=0
for ((i = ${r%-*}; i <= ${r#*-}; i++)); do SLURM_ARRAY_TASK_ID=$i "${!#}" || status=1; done
exit $status
"""


def body(log):
    """The job's output in a log, without the header and footer lines."""
    return [line for line in log.read_text().splitlines() if not line.startswith("#")]


def test_run_parallel_jobs_substitutes_job(tmp_path):
    p = run_tool("utils/run.sh", "JOB=1:3", "log/echo.JOB.log", "echo", "job JOB of 3", "|", "tr", "a-z", "A-Z", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    for j in (1, 2, 3):
        log = tmp_path / "log" / f"echo.{j}.log"
        assert body(log) == [f"JOB {j} OF 3"]
        text = log.read_text()
        assert text.startswith(f"# echo job\\ {j}\\ of\\ 3 | tr a-z A-Z\n") and "# Ended (code 0) at " in text


def test_run_reports_failed_jobs(tmp_path):
    p = run_tool("utils/run.sh", "--mem", "4G", "--gpu=1", "TASK=2:5", "log/t.TASK.log", "test", "TASK", "-ne", "3",
                 "&&", "test", "TASK", "-ne", "5", cwd=tmp_path)
    assert p.returncode == 1
    assert "2 / 4 jobs failed, see log/t.3.log log/t.5.log" in p.stderr
    assert "# Ended (code 1)" in (tmp_path / "log/t.3.log").read_text()
    assert "# Ended (code 0)" in (tmp_path / "log/t.4.log").read_text()


def test_run_pipeline_failure_counts(tmp_path):
    p = run_tool("utils/run.sh", "log/single.log", "false", "|", "cat", cwd=tmp_path)
    assert p.returncode == 1 and "1 / 1 jobs failed, see log/single.log" in p.stderr


def test_run_parallel_and_throttled(tmp_path):
    def timed(*options):
        start = time.monotonic()
        assert run_tool("utils/run.sh", *options, "JOB=1:3", "l/JOB.log", "sleep", "0.6", cwd=tmp_path).returncode == 0
        return time.monotonic() - start
    assert timed() < 1.5  # all three at once
    assert timed("--max-jobs-run", "1") >= 1.8  # one after the other


@pytest.mark.parametrize("args, message", [
    (["--queue", "x", "log", "true"], "invalid option --queue"),
    (["JOB=3:1", "log", "true"], "empty job range JOB=3:1"),
    (["--max-jobs-run", "x", "log", "true"], "--max-jobs-run takes a number"),
])
def test_run_bad_usage(tmp_path, args, message):
    p = run_tool("utils/run.sh", *args, cwd=tmp_path)
    assert p.returncode == 1 and message in p.stderr


FAKE_SACCT = """#!/usr/bin/env bash
# Records its arguments; answers as Slurm for array job 4242 whose task 2 ran out of time.
printf '%s\\n' "$@" > "$FAKE_SACCT_ARGS"
printf '4242_1|COMPLETED\\n4242_2|TIMEOUT\\n4242_3|COMPLETED\\n'
"""


def install_fakes(tmp_path, monkeypatch, **scripts):
    """Put executable ``scripts`` (name: text) into ``tmp_path/bin``, first on PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, text in scripts.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")


@pytest.fixture
def fake_sbatch(tmp_path, monkeypatch):
    install_fakes(tmp_path, monkeypatch, sbatch=FAKE_SBATCH)
    monkeypatch.setenv("FAKE_SBATCH_ARGS", str(tmp_path / "sbatch.args"))
    return tmp_path / "sbatch.args"


def test_slurm_submits_one_array_job(tmp_path, fake_sbatch):
    p = run_tool("utils/slurm.sh", "--mem", "4G", "--gpu", "1", "--time=2:00:00", "--num-threads", "4", "--max-jobs-run", "2",
                 "JOB=1:3", "exp/log/x.JOB.log", "echo", "part JOB", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    args = fake_sbatch.read_text().splitlines()
    assert args[:5] == ["--wait", "--parsable", "--job-name=x.array", "--array=1-3%2", "--output=exp/log/q/x.array.%a.out"]
    assert args[5:-1] == ["--mem=4G", "--gres=gpu:1", "--time=2:00:00", "--cpus-per-task=4"]
    assert args[-1] == "exp/log/q/x.array.sh"
    for j in (1, 2, 3):
        assert body(tmp_path / f"exp/log/x.{j}.log") == [f"part {j}"]


def test_slurm_names_failed_jobs(tmp_path, fake_sbatch):
    p = run_tool("utils/slurm.sh", "JOB=1:3", "log/y.JOB.log", "test", "JOB", "=", "2", cwd=tmp_path)
    assert p.returncode == 1
    assert "2 / 3 jobs failed (sbatch exit status 1), see log/y.1.log log/y.3.log" in p.stderr
    assert "--gres" not in fake_sbatch.read_text()


def test_slurm_names_the_slurm_state_of_a_job_that_never_ended(tmp_path, fake_sbatch, monkeypatch):
    install_fakes(tmp_path, monkeypatch, sacct=FAKE_SACCT)
    monkeypatch.setenv("FAKE_SACCT_ARGS", str(tmp_path / "sacct.args"))
    p = run_tool("utils/slurm.sh", "JOB=1:3", "log/z.JOB.log", "test", "JOB", "!=", "2", cwd=tmp_path)
    assert p.returncode == 1
    assert "1 / 3 jobs failed" in p.stderr and "see log/z.2.log" in p.stderr
    assert "Slurm states: 4242_2 TIMEOUT)" in p.stderr
    assert "--jobs=4242" in (tmp_path / "sacct.args").read_text().splitlines()


def test_slurm_passes_gpus_of_one_multi_gpu_job(tmp_path, fake_sbatch):
    # as $cuda_cmd --gpu 8 LOG torchrun --nproc_per_node 8 steps/train_xvector.py ...
    p = run_tool("utils/slurm.sh", "--gpu", "8", "exp/x/log/train.log", "echo", "torchrun", "--nproc_per_node", "8",
                 cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    args = fake_sbatch.read_text().splitlines()
    assert "--gres=gpu:8" in args and "--array=1-1" in args
    assert body(tmp_path / "exp/x/log/train.log") == ["torchrun --nproc_per_node 8"]


def test_slurm_without_sbatch(tmp_path):
    p = run_tool("utils/slurm.sh", "log", "true", cwd=tmp_path)
    assert p.returncode == 1 and "sbatch not found" in p.stderr


@pytest.mark.parametrize("tool", ["utils/run.sh", "utils/slurm.sh", "utils/run_job.sh"])
def test_job_tools_help(tool):
    p = run_tool(tool, "--help")
    assert p.returncode == 0 and p.stdout.startswith(f"Usage: {tool} ")
    assert "#" not in p.stdout.splitlines()[0]
