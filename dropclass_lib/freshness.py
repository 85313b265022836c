"""Make-style skipping: a step's outputs are up to date when all exist and none is older than an input.

Files are written through :func:`dropclass_lib.atomic.atomic_path`, which keeps a rewritten file
that has not changed with its old modification time, so that an unchanged result does not make
the rest of the recipe redo its work. A step that has just done its work must therefore mark its
outputs fresh: an unchanged output older than a touched input would otherwise be redone forever.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


def up_to_date(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]) -> bool:
    outputs, inputs = [Path(p) for p in outputs], [Path(p) for p in inputs]
    if not all(p.is_file() for p in outputs) or not all(p.exists() for p in inputs):
        return False
    return min(p.stat().st_mtime_ns for p in outputs) >= max((p.stat().st_mtime_ns for p in inputs), default=0)


def mark_fresh(outputs: Iterable[str | os.PathLike]) -> None:
    """Set the outputs' modification time to now (after the step that made them has finished)."""
    for p in outputs:
        os.utime(p)
