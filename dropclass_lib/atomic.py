"""Write files so that a crash never leaves a half-written result under the final name.

Temporary files are created beside their target as ``.NAME.<host>-<pid>-XXXXXXXX.tmp``: the
host and process id say whose they are, so that a later run can remove those of processes that
died (a ``kill -9`` gives no chance to clean up) without touching those of live ones
(:func:`remove_dead_temps`). They get the mode an ordinary ``open()`` would give (0666 less the
umask), not ``mkstemp``'s 0600: on a shared machine the group must be able to read the results.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import IO, Iterator

from dropclass_lib.errors import UserError

# Files up to this size are compared with what they would replace (see atomic_path).
MAX_COMPARE_BYTES = 256 << 20

# Errors that mean the file system is full (or the user's quota is used up).
_FULL_DISK = (errno.ENOSPC, errno.EDQUOT)

_HOST = re.sub(r"\W", "_", socket.gethostname().split(".")[0]) or "localhost"
# .NAME.<host>-<pid>-<mkstemp's 8 characters>.tmp, optionally followed by one more suffix
# (a helper file written beside the temporary one, e.g. kaldiio's .tmp.scp).
_TEMP_NAME = re.compile(r"^\..+\.(?P<host>\w+)-(?P<pid>\d+)-\w{8}\.tmp(\.[^.]+)?$")


def current_umask() -> int:
    """The process's umask, read without changing it where /proc allows (other threads may be
    creating files meanwhile)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _same_content(new: Path, old: Path) -> bool:
    try:
        size = old.stat().st_size
    except FileNotFoundError:
        return False
    return size == new.stat().st_size and size <= MAX_COMPARE_BYTES and filecmp.cmp(new, old, shallow=False)


def _temp_beside(path: Path) -> Path:
    """Create an empty temporary file beside ``path``, with the mode of a newly opened file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    return Path(tmp)


def disk_full_error(err: OSError, path: str | os.PathLike) -> UserError | None:
    """The user-facing error for a write to ``path`` that failed because the disk is full."""
    if err.errno in _FULL_DISK:
        return UserError(f"no space left on device while writing {path} ({err.strerror}): free some space "
                         "or write elsewhere, then rerun")
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` keeps its old content; a full
    disk becomes a :class:`UserError` naming ``path``. When the new content equals the old byte
    for byte, the old file is kept with its modification time: a re-run stage that rewrites the
    same feats.scp or utt2spk then does not make every later stage (which skips work whose
    outputs are newer than its inputs) redo its work.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(path)
        yield tmp
        if _same_content(tmp, path):
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except OSError as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        full = disk_full_error(err, path)
        if full is None:
            raise
        raise full from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open()`` for writing through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


def place_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Make ``dst`` the file ``src``: a hard link where the file system allows, else a copy with
    its times (so that the freshness records that name ``dst`` see an unchanged input); atomic."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and os.path.samefile(src, dst):
        return
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host may still write: it exists and (where /proc tells)
    is not a zombie, which a killed job stays until its parent, or init, reaps it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def remove_dead_temps(directory: str | os.PathLike) -> list[Path]:
    """Remove the temporary files in ``directory`` left by processes of this host that no longer
    run (a killed stage's half-written archives); return what was removed."""
    removed = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for name in names:
        m = _TEMP_NAME.match(name)
        if m and m.group("host") == _HOST and not _process_alive(int(m.group("pid"))):
            path = Path(directory) / name
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def regenerating(*paths: str | os.PathLike) -> Iterator[None]:
    """Move ``paths`` aside while the block regenerates them.

    If the block fails, none of them is left behind (no stale list pointing at old archives). If
    it succeeds and a file comes back with the same bytes, the old file is put back with its
    modification time, so that later stages see nothing changed (as :func:`atomic_path` does).
    A copy set aside by a run that was killed is removed (its file was already gone).
    """
    paths = [Path(p) for p in paths]
    aside = {}
    for path in paths:
        previous = path.with_name(f".{path.name}.previous")
        if path.exists():
            aside[path] = previous
            os.replace(path, previous)
        else:
            previous.unlink(missing_ok=True)
    try:
        yield
    except BaseException:
        for path in paths:  # written before the failure, or set aside
            path.unlink(missing_ok=True)
            aside.get(path, path).unlink(missing_ok=True)
        raise
    for path, old in aside.items():
        if path.exists() and _same_content(path, old):
            os.replace(old, path)
        else:
            old.unlink(missing_ok=True)
