"""Local job processes (dropclass_lib.parallel.run_jobs) start clean: the locks held by the
stage's other threads do not reach them, and they run in the stage's current directory, umask
and environment."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import ROOT
from dropclass_lib.parallel import run_jobs

TESTS = ROOT / "tests"

_STAGE_WITH_A_BUSY_THREAD = textwrap.dedent("""
    import sys, threading
    sys.path[:0] = [{root!r}, {tests!r}]
    import job_with_module_lock
    from dropclass_lib.parallel import run_jobs
    held, done = threading.Event(), threading.Event()
    def hold():
        with job_with_module_lock.LOCK:
            held.set()
            done.wait()
    threading.Thread(target=hold, daemon=True).start()
    held.wait()
    print(run_jobs(job_with_module_lock.worker, [1, 2, 3], desc="jobs"))
    done.set()
""")


def test_jobs_do_not_inherit_a_lock_another_thread_of_the_stage_holds():
    """What a fork of the stage would deadlock on (the CI hang of a job forked from a test
    runner with an ONNX thread pool): the jobs start from a process without those threads."""
    script = _STAGE_WITH_A_BUSY_THREAD.format(root=str(ROOT), tests=str(TESTS))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[-2] == "[10, 20, 30]"


def _job_context(job: int, arg: str, progress) -> tuple[str, int, str | None]:
    umask = os.umask(0)
    os.umask(umask)
    return os.getcwd(), umask, os.environ.get(arg)


def test_jobs_run_in_the_stages_directory_umask_and_environment(tmp_path, monkeypatch):
    old = os.umask(0o027)
    try:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("DROPCLASS_TEST_JOB_VALUE", "set after the fork server started")
        run_jobs(_job_context, ["PATH"], desc="start the fork server")
        monkeypatch.setenv("DROPCLASS_TEST_JOB_VALUE", "changed since")
        assert run_jobs(_job_context, ["DROPCLASS_TEST_JOB_VALUE"] * 2, desc="jobs") == \
            [(str(tmp_path), 0o027, "changed since")] * 2
    finally:
        os.umask(old)
