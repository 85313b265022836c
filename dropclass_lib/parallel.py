"""Kaldi-style parallel jobs: split a list into ``nj`` contiguous chunks, run one process per
chunk with a shared progress bar, and write each job's archive so that a killed job never
leaves a usable-looking result.

A job's output is ``<prefix>.<job>.ark`` plus ``<prefix>.<job>.scp``; the scp is written last,
after the ark is complete and renamed into place, so a killed job never leaves an scp. Each job
follows the freshness rule of :mod:`dropclass_lib.provenance` on its own, with its record
``<prefix>.<job>.made_from.json``: the stage's settings and input files plus the keys the job was
given. A re-run keeps a job only when all of these are unchanged, so a changed wav.scp, feature
option or ``--nj`` redoes the jobs it touches, and finished jobs of an interrupted run are kept.

Job processes die with the stage that started them (on Linux, see :func:`die_with_stage`): a
``kill -9`` of the stage leaves no orphan still writing archives. What a killed job had half
written stays under its temporary name until the next run of the stage removes it.

Dispatch (:class:`Dispatch`): with ``--cmd CMD`` a stage runs its jobs as Kaldi does, through a
job runner (``utils/run.sh``, ``utils/slurm.sh``): ``CMD JOB=1:N LOG_DIR/job_<prefix>.JOB.log
<the same step> --job JOB/N``. Each such process does exactly what one local job does (its
archive, its record) and nothing else; the stage that dispatched them waits, then merges.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import queue
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import traceback
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import kaldiio
import numpy as np
from tqdm import tqdm

from dropclass_lib import provenance
from dropclass_lib.atomic import atomic_open, atomic_path, remove_dead_temps
from dropclass_lib.errors import UserError
from dropclass_lib.tables import read_kv, write_table

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[float], None]


def split_contiguous(items: Sequence[T], n: int) -> list[list[T]]:
    """Split ``items`` into ``n`` contiguous chunks whose sizes differ by at most one.

    ``n`` larger than ``len(items)`` gives ``len(items)`` chunks of one (never empty chunks).
    """
    if n < 1:
        raise UserError(f"the number of jobs must be at least 1, got {n}")
    n = min(n, len(items)) or 1
    base, extra = divmod(len(items), n)
    chunks, start = [], 0
    for j in range(n):
        end = start + base + (1 if j < extra else 0)
        chunks.append(list(items[start:end]))
        start = end
    return chunks


# Jobs start from a fork server: a process started afresh, single-threaded, that has imported
# these once and forks each job from itself. Forking the stage itself would copy whatever locks
# its other threads held at that instant (a Jupyter kernel, a test runner, an ONNX or OpenMP
# thread pool) into a child that can then never take them.
_FORKSERVER_PRELOAD = ["dropclass_lib.parallel", "numpy", "kaldiio", "soundfile", "torch", "lhotse"]


def _job_context():
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_FORKSERVER_PRELOAD)
    return ctx


def die_with_stage(stage_pid: int) -> None:
    """Kill this job when the stage that started it dies (Linux: a thread waits on the stage's
    pidfd; elsewhere a no-op), and leave at once if it is already gone. The fork server, the
    job's parent, outlives the stage while any job runs, so the parent-death signal cannot."""
    try:
        pidfd = os.pidfd_open(stage_pid)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):
        return

    def wait_for_stage() -> None:
        select.select([pidfd], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=wait_for_stage, name="die-with-stage", daemon=True).start()


@dataclass(frozen=True)
class _StageContext:
    """What a forked job would have inherited from the stage, and a job from the fork server
    (started earlier, perhaps elsewhere) would not: its directory, umask and environment."""

    pid: int
    cwd: str
    umask: int
    environ: dict

    @classmethod
    def here(cls) -> "_StageContext":
        umask = os.umask(0o022)
        os.umask(umask)
        return cls(os.getpid(), os.getcwd(), umask, dict(os.environ))

    def enter(self) -> None:
        die_with_stage(self.pid)
        os.chdir(self.cwd)
        os.umask(self.umask)
        os.environ.clear()
        os.environ.update(self.environ)


def _child(worker: Callable, job: int, arg: Any, q, stage: _StageContext) -> None:
    stage.enter()

    def progress(amount: float = 1) -> None:
        q.put(("progress", job, amount))

    try:
        result = worker(job, arg, progress)
    except UserError as err:
        q.put(("error", job, str(err)))
    except BaseException:  # a bug: hand the whole traceback to the parent
        q.put(("error", job, "unexpected error in job:\n" + traceback.format_exc()))
    else:
        q.put(("done", job, result))


def run_jobs(worker: Callable[[int, Any, Progress], T], args: Sequence[Any], desc: str,
             total: float | None = None, unit: str = "utt", job_ids: Sequence[int] | None = None,
             num_jobs: int | None = None) -> list[T]:
    """Run ``worker(job, arg, progress)`` for each ``arg`` in ``args``, each in its own process,
    all at once as Kaldi's run.pl does; return the results in the order of ``args``.

    The processes come from a fork server (see ``_FORKSERVER_PRELOAD``), so ``worker`` and each
    ``arg`` are pickled: a module-level function or an instance of a module-level class, and
    data that the job needs (not more: each job gets its own copy).

    Jobs are numbered 1..len(args), or by ``job_ids`` (out of ``num_jobs``) when only some of a
    stage's jobs are being (re-)run; the numbers appear in error messages.

    ``progress(amount)`` advances a tqdm bar (shown on a terminal only). When jobs fail, the
    others still run to the end (their outputs are reusable on a re-run) and then one
    :class:`UserError` lists the failures.
    """
    ctx = _job_context()
    q = ctx.Queue()
    job_ids = list(job_ids) if job_ids is not None else list(range(1, len(args) + 1))
    num_jobs = num_jobs or len(args)
    procs, stage = {}, _StageContext.here()
    for job, arg in zip(job_ids, args):
        p = ctx.Process(target=_child, args=(worker, job, arg, q, stage), daemon=True)
        p.start()
        procs[job] = p
    results: dict[int, T] = {}
    errors: dict[int, str] = {}
    bar = tqdm(total=total, desc=desc, unit=unit, disable=None, dynamic_ncols=True)
    try:
        while len(results) + len(errors) < len(procs):
            try:
                kind, job, payload = q.get(timeout=0.5)
            except queue.Empty:
                for job, p in procs.items():
                    if job not in results and job not in errors and p.exitcode not in (None, 0):
                        errors[job] = f"process died with exit code {p.exitcode}"
                continue
            if kind == "progress":
                bar.update(payload)
            elif kind == "done":
                results[job] = payload
            else:
                errors[job] = payload
    except BaseException:
        for p in procs.values():
            p.terminate()
        raise
    finally:
        bar.close()
        for p in procs.values():
            p.join()
    if len(errors) == 1:
        [(j, msg)] = errors.items()
        raise UserError(f"job {j}/{num_jobs} failed: {msg}")
    if errors:
        lines = [f"job {j}/{num_jobs}: {msg}" for j, msg in sorted(errors.items())]
        raise UserError(f"{len(errors)} of {len(procs)} jobs failed:\n  " + "\n  ".join(lines))
    return [results[j] for j in job_ids]


JOB_OPTION = "--job"
_SHELL_SPECIAL = re.compile(r"[^\w@%+=:,./-]")


def _parse_job(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", value)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        import argparse

        raise argparse.ArgumentTypeError(f"expected J/N with 1 <= J <= N, got {value!r}")
    return int(m.group(1)), int(m.group(2))


def add_dispatch_options(parser) -> None:
    """``--cmd`` and ``--job`` on a step's argument parser (see :class:`Dispatch`)."""
    parser.add_argument("--cmd", default=None, metavar="CMD",
                        help="run the --nj jobs through this job runner, as Kaldi's $train_cmd "
                             "(e.g. utils/run.sh, or \"utils/slurm.sh --mem 4G\"); default: on this machine")
    parser.add_argument(JOB_OPTION, type=_parse_job, default=None, metavar="J/N",
                        help="run only job J of N and write no merged output (what --cmd runs; not for direct use)")


def _strip_cmd_option(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--cmd":
            skip = True
        elif not arg.startswith("--cmd="):
            out.append(arg)
    return out


@dataclass(frozen=True)
class Dispatch:
    """How a stage's jobs run: in processes of this machine (``cmd`` None), through the job runner
    ``cmd``, or, in a process that runner started, just job ``job`` of ``num_jobs``.

    ``command`` is the step's own command line (interpreter, script, arguments without
    ``--cmd``), which each dispatched job runs again with ``--job J/N``.
    """

    cmd: str | None = None
    command: tuple[str, ...] = ()
    job: int | None = None
    num_jobs: int | None = None

    @classmethod
    def from_args(cls, args, script: str | os.PathLike, argv: Sequence[str] | None) -> "Dispatch":
        """From the options of :func:`add_dispatch_options`; ``script`` is the step's file
        (``__file__``) and ``argv`` the arguments its ``main`` was given (None: sys.argv)."""
        argv = list(sys.argv[1:] if argv is None else argv)
        job, num_jobs = args.job if args.job else (None, None)
        cmd = args.cmd.strip() if args.cmd and args.cmd.strip() else None
        return cls(cmd, (sys.executable, os.path.abspath(script), *_strip_cmd_option(argv)), job, num_jobs)

    @property
    def is_job(self) -> bool:
        """True in a process that runs one dispatched job (``--job J/N``)."""
        return self.job is not None

    def lock(self, lock_dirs: Callable, *directories):
        """``lock_dirs(*directories)`` (the step's output locks), except in a dispatched job:
        the stage that started it holds them."""
        return nullcontext() if self.is_job else lock_dirs(*directories)

    def runner_command(self, log_template: Path, num_jobs: int) -> list[str]:
        """``CMD JOB=1:N LOG command... --job JOB/N`` as an argument list. The job runners pass
        an argument without whitespace to bash as it is (Kaldi's convention, so that ``|`` can
        be a pipe); arguments holding other shell characters are therefore quoted here."""
        words = [a if any(c.isspace() for c in a) or not _SHELL_SPECIAL.search(a) else shlex.quote(a)
                 for a in self.command]
        return [*shlex.split(self.cmd), f"JOB=1:{num_jobs}", str(log_template), *words, JOB_OPTION, f"JOB/{num_jobs}"]


def dispatch_jobs(dispatch: Dispatch, log_template: Path, num_jobs: int, finished: Callable[[int], bool],
                  job_ids: Sequence[int]) -> None:
    """Run all ``num_jobs`` jobs through ``dispatch.cmd`` (the fresh ones among them find their
    record and return at once) and wait; a job of ``job_ids`` not ``finished`` afterwards is an
    error naming its log."""
    argv = dispatch.runner_command(log_template, num_jobs)
    log.info("running %d jobs: %s", num_jobs, shlex.join(argv))
    try:
        status = subprocess.run(argv, stdin=subprocess.DEVNULL).returncode
    except OSError as err:
        raise UserError(f"--cmd {dispatch.cmd!r}: cannot run it ({err.strerror})") from None
    failed = [j for j in job_ids if not finished(j)]
    if failed:
        logs = " ".join(str(log_template).replace("JOB", str(j)) for j in failed)
        raise UserError(f"{len(failed)} of {num_jobs} jobs failed (--cmd {dispatch.cmd!r} exit status {status}), see {logs}")
    if status != 0:
        raise UserError(f"--cmd {dispatch.cmd!r} exited with status {status} although every job finished; "
                        f"see {str(log_template).replace('JOB', '*')}")


@dataclass(frozen=True)
class ArkJob:
    """The archive one job writes: ``<prefix>.<job>.ark``, ``.scp`` and, for matrices,
    ``.utt2num_frames``. ``prefix`` is made absolute so the scp works from any directory."""

    prefix: Path
    job: int

    def _path(self, ext: str) -> Path:
        return Path(os.path.abspath(f"{self.prefix}.{self.job}.{ext}"))

    @property
    def ark(self) -> Path:
        return self._path("ark")

    @property
    def scp(self) -> Path:
        return self._path("scp")

    @property
    def num_frames(self) -> Path:
        return self._path("utt2num_frames")

    def finished(self) -> bool:
        return self.scp.is_file()

    def read_scp(self) -> dict[str, str]:
        return read_kv(self.scp)

    def read_num_frames(self) -> dict[str, int]:
        return {k: int(v) for k, v in read_kv(self.num_frames).items()}

    def write(self, items: Iterable[tuple[str, np.ndarray]], write_num_frames: bool = True) -> int:
        """Write ``(key, float32 array)`` pairs; return how many were written.

        Order of the files: ark (to a temp name, fsync'd, renamed), then utt2num_frames,
        then the scp, so a job killed at any point leaves no scp.
        """
        self.scp.unlink(missing_ok=True)
        entries: list[tuple[str, int]] = []
        num_frames: dict[str, int] = {}
        with atomic_path(self.ark) as tmp:
            with open(tmp, "wb") as f:
                for key, arr in items:
                    offset = f.tell() + len(key.encode("utf-8")) + 1
                    kaldiio.save_ark(f, {key: np.ascontiguousarray(arr, dtype=np.float32)})
                    entries.append((key, offset))
                    num_frames[key] = arr.shape[0]
                f.flush()
                os.fsync(f.fileno())
        if write_num_frames:
            write_table(self.num_frames, num_frames)
        with atomic_open(self.scp, "w", encoding="utf-8") as f:
            for key, offset in entries:
                f.write(f"{key} {self.ark}:{offset}\n")
        return len(entries)


def merge_ark_jobs(jobs: Sequence[ArkJob], scp_path: str | os.PathLike,
                   num_frames_path: str | os.PathLike | None = None) -> int:
    """Write the union of finished jobs' scp entries to ``scp_path`` (sorted, atomic), and
    their frame counts to ``num_frames_path`` when given; return the number of entries."""
    scp: dict[str, str] = {}
    num_frames: dict[str, int] = {}
    for job in jobs:
        scp.update(job.read_scp())
        if num_frames_path is not None:
            num_frames.update(job.read_num_frames())
    if num_frames_path is not None:
        write_table(num_frames_path, num_frames)
    write_table(scp_path, scp)
    return len(scp)


def _keys_digest(keys: Sequence[str], entry: Callable[[str], str] | None) -> str:
    digest = hashlib.sha1()
    for key in keys:
        digest.update(f"{key} {entry(key) if entry else ''}\n".encode("utf-8"))
    return digest.hexdigest()


def _remove_job_files(prefix: Path, job: int) -> None:
    for ext in ("ark", "scp", "utt2num_frames", "made_from.json"):
        Path(f"{prefix}.{job}.{ext}").unlink(missing_ok=True)


def remove_ark_jobs(jobs: Sequence[ArkJob]) -> None:
    """Remove the jobs' files (archives, lists, records) once their entries are gathered elsewhere."""
    for job in jobs:
        _remove_job_files(job.prefix, job.job)


def check_scp_safe(directory: str | os.PathLike, what: str) -> None:
    """Refuse an archive directory whose absolute path holds whitespace: an scp line is
    ``key path:offset``, so such a path would split into several fields."""
    full = os.path.abspath(directory)
    if any(c.isspace() for c in full):
        raise UserError(f"{what} {full!r} contains whitespace, which the scp files pointing into it cannot hold; "
                        "use a path without spaces")


@dataclass(frozen=True)
class _RecordedJob:
    """One job of :func:`run_ark_jobs`: the stage's worker, then the job's freshness record,
    written in the job itself so that a finished job stays recorded when the stage is killed."""

    worker: Callable[[ArkJob, Sequence[str], Progress], None]

    def __call__(self, _, arg: tuple[ArkJob, Sequence[str], provenance.Stage], progress: Progress) -> None:
        job, chunk, st = arg
        self.worker(job, chunk, progress)
        st.finish()


def run_ark_jobs(prefix: str | os.PathLike, chunks: Sequence[Sequence[str]],
                 worker: Callable[[ArkJob, Sequence[str], Progress], None], desc: str,
                 settings: dict, inputs: Sequence[str | os.PathLike],
                 entry: Callable[[str], str] | None = None, dispatch: Dispatch | None = None,
                 log_dir: str | os.PathLike | None = None) -> tuple[list[ArkJob], bool]:
    """Run ``worker(ark_job, keys, progress)`` for each chunk of keys whose job is not fresh.

    A chunk is a sequence of keys, or a mapping from each key to what the job needs of it (its
    table line, say): the job process gets its own chunk only. ``worker`` is pickled into each
    job (see :func:`run_jobs`): it holds the stage's settings, not per-key data.

    ``dispatch`` says where the jobs run (:class:`Dispatch`; default: processes of this machine,
    :func:`run_jobs`). Through a job runner, its logs are ``log_dir/job_<prefix>.JOB.log``
    (default: the archive directory's ``log/``). In a dispatched job (``dispatch.is_job``) only that job is run, in this process,
    and the caller must merge nothing.

    ``settings`` (JSON-able) and ``inputs`` (files) are what every job's output depends on
    besides its keys; ``entry(key)``, when given, is the key's own input line (its wav.scp
    entry), so that a changed line redoes only the job that holds it. Jobs left from an earlier run with more jobs are removed. When some jobs
    fail, the others still finish and are recorded (a re-run redoes only the failed ones).
    Returns the jobs to merge and whether any had to be run.
    """
    prefix = Path(prefix)
    dispatch = dispatch or Dispatch()
    check_scp_safe(prefix.parent, "archive directory")
    remove_dead_temps(prefix.parent)
    inputs = list(inputs)
    jobs = [ArkJob(prefix, j) for j in range(1, len(chunks) + 1)]
    if dispatch.is_job and dispatch.num_jobs != len(jobs):
        raise UserError(f"{JOB_OPTION} {dispatch.job}/{dispatch.num_jobs}: this stage splits its "
                        f"utterances into {len(jobs)} jobs")
    beyond = len(jobs) + 1
    while not dispatch.is_job and any(Path(f"{prefix}.{beyond}.{ext}").exists() for ext in ("scp", "made_from.json")):
        _remove_job_files(prefix, beyond)
        beyond += 1
    todo = []
    for job, chunk in zip(jobs, chunks):
        if dispatch.is_job and job.job != dispatch.job:
            continue
        st = provenance.open_stage(prefix.parent, {**settings, "keys_sha1": _keys_digest(chunk, entry), "num_keys": len(chunk)},
                                   inputs, outputs=(job.scp.name,), what=f"{prefix.name} job {job.job}",
                                   record_name=f"{prefix.name}.{job.job}.made_from.json")
        if not st.fresh:
            job.scp.unlink(missing_ok=True)
            todo.append((job, chunk, st))

    run_one = _RecordedJob(worker)
    if todo and dispatch.is_job:
        run_one(None, todo[0], lambda amount=1: None)
    elif todo and dispatch.cmd:
        log_dir = Path(log_dir) if log_dir is not None else prefix.parent / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        dispatch_jobs(dispatch, log_dir / f"job_{prefix.name}.JOB.log", len(jobs),
                      lambda j: jobs[j - 1].finished(), [job.job for job, _, _ in todo])
    elif todo:
        run_jobs(run_one, todo, desc, total=sum(len(c) for _, c, _ in todo),
                 job_ids=[job.job for job, _, _ in todo], num_jobs=len(jobs))
    return jobs, bool(todo)
