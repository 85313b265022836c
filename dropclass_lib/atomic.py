"""Write files so that a crash never leaves a half-written result under the final name."""

from __future__ import annotations

import contextlib
import filecmp
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


# Files up to this size are compared with what they would replace (see atomic_path).
MAX_COMPARE_BYTES = 256 << 20


def _same_content(new: Path, old: Path) -> bool:
    try:
        size = old.stat().st_size
    except FileNotFoundError:
        return False
    return size == new.stat().st_size and size <= MAX_COMPARE_BYTES and filecmp.cmp(new, old, shallow=False)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` keeps its old content. When the
    new content equals the old byte for byte, the old file is kept with its modification time:
    a re-run stage that rewrites the same feats.scp or utt2spk then does not make every later
    stage (which skips work whose outputs are newer than its inputs) redo its work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if _same_content(tmp, path):
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open()`` for writing through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


@contextlib.contextmanager
def regenerating(*paths: str | os.PathLike) -> Iterator[None]:
    """Move ``paths`` aside while the block regenerates them.

    If the block fails, none of them is left behind (no stale list pointing at old archives). If
    it succeeds and a file comes back with the same bytes, the old file is put back with its
    modification time, so that later stages see nothing changed (as :func:`atomic_path` does).
    """
    aside = {}
    for path in map(Path, paths):
        if path.exists():
            aside[path] = path.with_name(f".{path.name}.previous")
            os.replace(path, aside[path])
    try:
        yield
    except BaseException:
        for old in aside.values():
            old.unlink(missing_ok=True)
        raise
    for path, old in aside.items():
        if path.exists() and _same_content(path, old):
            os.replace(old, path)
        else:
            old.unlink(missing_ok=True)
