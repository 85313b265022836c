"""One writer per output directory: ``DIR/.lock``, held with ``flock`` while a step writes.

A second run writing into the same directory (a recipe started twice, two jobs given one
output) would mix its archives and lists with the first one's; it stops at once with
``DIR is locked by PID n``. The kernel releases an ``flock`` when its holder dies, however it
dies, so a killed run never leaves a stale lock (its workers die with it, see
:mod:`dropclass_lib.parallel`). Once the lock is held, the temporary files that dead runs left
in the directory are removed (:func:`dropclass_lib.atomic.remove_dead_temps`).

Forked worker processes share their parent's lock; a directory locked again by the process
that holds it (a step calling another step's code on the same directory) is not locked twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from dropclass_lib.atomic import remove_dead_temps
from dropclass_lib.errors import UserError

LOCK_NAME = ".lock"

_held: dict[str, int] = {}  # real path of a directory -> how many blocks of this process hold it


def _holder(fd: int) -> str:
    """Who holds the lock, from what the holder wrote into the file: ``PID n [on HOST]``."""
    try:
        fields = os.pread(fd, 200, 0).decode("utf-8", errors="replace").split()
    except OSError:
        fields = []
    if not fields:
        return "another process"
    host = f" on {fields[1]}" if len(fields) > 1 and fields[1] != os.uname().nodename else ""
    return f"PID {fields[0]}{host}"


def _open_lock(lock: Path) -> int:
    try:
        return os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file: reading is enough to take part in flock
        return os.open(lock, os.O_RDONLY)


@contextlib.contextmanager
def _lock_dir(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(directory)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    lock = Path(key) / LOCK_NAME
    while True:
        fd = _open_lock(lock)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(f"{directory} is locked by {holder}: another run is writing into it; "
                            "wait for it to finish or stop it, or write elsewhere") from None
        # The previous holder removes the file when it is done: if it did so after we opened
        # it, our lock is on a file nobody else will see, so try again with the new one.
        try:
            current = os.stat(lock)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            break
        os.close(fd)
    owner = os.getpid()
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{owner} {os.uname().nodename}\n".encode(), 0)
    _held[key] = 1
    try:
        remove_dead_temps(key)
        yield
    finally:
        del _held[key]
        if os.getpid() == owner:
            with contextlib.suppress(OSError):
                lock.unlink()
        os.close(fd)


@contextlib.contextmanager
def lock_output_dirs(*directories: str | os.PathLike | None) -> Iterator[None]:
    """Hold the lock of each of ``directories`` (created if needed; ``None`` entries are
    skipped) for the block; raise :class:`UserError` naming the holder's PID if another
    process holds one of them."""
    with contextlib.ExitStack() as stack:
        seen = set()
        for d in directories:
            if d is None:
                continue
            Path(d).mkdir(parents=True, exist_ok=True)
            real = os.path.realpath(d)
            if real not in seen:
                seen.add(real)
                stack.enter_context(_lock_dir(Path(d)))
        yield
