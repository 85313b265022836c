"""Kaldi-style parallel jobs: split a list into ``nj`` contiguous chunks, run one process per
chunk with a shared progress bar, and write each job's archive so that a killed job never
leaves a usable-looking result.

A job's output is ``<prefix>.<job>.ark`` plus ``<prefix>.<job>.scp``; the scp is written last,
after the ark is complete and renamed into place, so "the scp exists" is the test for "the job
finished". Re-running a stage skips the jobs whose scp exists and redoes the others.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import kaldiio
import numpy as np
import yaml
from tqdm import tqdm

from dropclass_lib.atomic import atomic_open, atomic_path
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import read_kv, write_table

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


def _child(worker: Callable, job: int, arg: Any, q) -> None:
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
    """Run ``worker(job, arg, progress)`` for each ``arg`` in ``args``, each in its own (forked)
    process, all at once as Kaldi's run.pl does; return the results in the order of ``args``.

    Jobs are numbered 1..len(args), or by ``job_ids`` (out of ``num_jobs``) when only some of a
    stage's jobs are being (re-)run; the numbers appear in error messages.

    ``progress(amount)`` advances a tqdm bar (shown on a terminal only). When jobs fail, the
    others still run to the end (their outputs are reusable on a re-run) and then one
    :class:`UserError` lists the failures.
    """
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    job_ids = list(job_ids) if job_ids is not None else list(range(1, len(args) + 1))
    num_jobs = num_jobs or len(args)
    procs = {}
    for job, arg in zip(job_ids, args):
        p = ctx.Process(target=_child, args=(worker, job, arg, q), daemon=True)
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
    if errors:
        lines = [f"job {j}/{num_jobs}: {msg}" for j, msg in sorted(errors.items())]
        raise UserError(f"{len(errors)} of {len(procs)} jobs failed:\n  " + "\n  ".join(lines))
    return [results[j] for j in job_ids]


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


def check_job_record(path: str | os.PathLike, record: dict) -> None:
    """Save ``record`` (the settings a stage's archives are made with) at ``path``, or, if an
    earlier run saved one, insist that it is the same: archives made with other settings must
    not be mixed with new ones."""
    path = Path(path)
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            old = yaml.safe_load(f)
        if old != record:
            changed = sorted(k for k in set(old or {}) | set(record) if (old or {}).get(k) != record.get(k))
            raise InputFileError(path, None, "the archives beside this file were made with other settings "
                                 f"(differing: {', '.join(changed)}); delete them or use another output directory")
        return
    with atomic_open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(record, f, sort_keys=False)


def run_ark_jobs(prefix: str | os.PathLike, chunks: Sequence[Sequence[str]],
                 worker: Callable[[ArkJob, Sequence[str], Progress], None], desc: str,
                 all_keys: bool = True) -> tuple[list[ArkJob], bool]:
    """Run ``worker(ark_job, keys, progress)`` for each chunk of keys whose job is not finished.

    A finished job's scp must hold exactly its chunk's keys (``all_keys``) or a subset of them
    (stages that may drop entries); otherwise the archives come from another split or other
    data and we stop. Returns all jobs and whether any had to be run.
    """
    jobs = [ArkJob(Path(prefix), j) for j in range(1, len(chunks) + 1)]
    todo = []
    for job, chunk in zip(jobs, chunks):
        if not job.finished():
            todo.append((job, chunk))
            continue
        have, want = set(job.read_scp()), set(chunk)
        if (have != want) if all_keys else not have <= want:
            raise InputFileError(job.scp, None, f"finished job {job.job} holds other utterances than "
                                 "this run gives it (different --nj or changed data?); delete the job's "
                                 "files or use another output directory")
    if todo:
        run_jobs(lambda j, arg, progress: worker(arg[0], arg[1], progress), todo, desc,
                 total=sum(len(c) for _, c in todo), job_ids=[job.job for job, _ in todo],
                 num_jobs=len(jobs))
    return jobs, bool(todo)
