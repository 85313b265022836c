"""Kaldi archives through kaldiio: reading scp entries with line-accurate errors, and writing
vector archives (x-vectors, speaker means) as ``NAME.ark`` + ``NAME.scp``."""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Collection, Iterator

import kaldiio
import numpy as np

from dropclass_lib.atomic import atomic_open, atomic_path
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import iter_table


MAX_OPEN_ARKS = 16
_AT_OFFSET = re.compile(r":\d+(\[[^\]]*\])?$")  # "x.ark:123" or "x.ark:123[0:5]"


class OpenArchives(OrderedDict):
    """kaldiio's ``fd_dict``: archives kept open between entries (kaldiio seeks to each offset),
    at most ``MAX_OPEN_ARKS`` at a time, the least recently read closed first."""

    def __getitem__(self, ark):
        self.move_to_end(ark)
        return super().__getitem__(ark)

    def __setitem__(self, ark, f):
        while len(self) >= MAX_OPEN_ARKS:
            self.popitem(last=False)[1].close()
        super().__setitem__(ark, f)

    def close(self) -> None:
        while self:
            self.popitem()[1].close()


def load_matrix(rxfile: str, arks: OpenArchives) -> np.ndarray:
    """The matrix or vector of one scp entry, reading through the open archives ``arks``; an
    entry without a byte offset (``x.ark``: its first matrix) or a pipe is opened on its own,
    as kaldiio does."""
    return np.asarray(kaldiio.load_mat(rxfile, fd_dict=arks if _AT_OFFSET.search(rxfile) else None))


def iter_scp(scp: str | os.PathLike, keys: Collection[str] | None = None
             ) -> Iterator[tuple[int, str, np.ndarray, str]]:
    """Yield ``(lineno, key, array, line)`` for the entries of an scp (only ``keys`` if given).

    Archives stay open from one entry to the next (an scp in archive order reads each archive
    front to back, not one open per entry). An entry without a byte offset (``x.ark``: its first
    matrix) or a pipe is opened on its own, as kaldiio does.
    """
    arks = OpenArchives()
    try:
        for lineno, key, fields, line in iter_table(scp, min_fields=2, max_fields=2):
            if keys is not None and key not in keys:
                continue
            rxfile = fields[0]
            try:
                array = load_matrix(rxfile, arks)
            except Exception as err:  # kaldiio raises many kinds (OSError, ValueError, struct.error)
                raise InputFileError(scp, lineno, f"cannot read the entry of {key!r} ({err})", line) from None
            yield lineno, key, array, line
    finally:
        arks.close()


def read_vectors(scp: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Return ``(keys, matrix)``: the scp's keys in file order and one float32 row per key."""
    keys, rows = [], []
    for lineno, key, v, line in iter_scp(scp):
        if v.ndim != 1:
            raise InputFileError(scp, lineno, f"{key!r} is a matrix of shape {v.shape}, expected a vector", line)
        if rows and v.size != rows[0].size:
            raise InputFileError(scp, lineno, f"{key!r} has dimension {v.size}, the first vector {rows[0].size}", line)
        keys.append(key)
        rows.append(v.astype(np.float32))
    if not rows:
        raise UserError(f"{scp}: no vectors")
    return keys, np.stack(rows)


def write_vectors(out_dir: str | os.PathLike, name: str, keys, matrix: np.ndarray) -> Path:
    """Write ``out_dir/NAME.ark`` and ``out_dir/NAME.scp``; return the scp path.

    The archive is renamed into place first and the scp written last, both atomically: an
    scp that exists always points into a complete archive.
    """
    out_dir = Path(out_dir)
    ark, scp = out_dir / f"{name}.ark", out_dir / f"{name}.scp"
    matrix = np.asarray(matrix, dtype=np.float32)
    with atomic_path(ark) as tmp_ark:
        tmp_scp = tmp_ark.with_name(tmp_ark.name + ".scp")
        try:
            kaldiio.save_ark(str(tmp_ark), {k: matrix[i] for i, k in enumerate(keys)}, scp=str(tmp_scp))
            with open(tmp_scp, encoding="utf-8") as f:
                offsets = [line.split()[1].rsplit(":", 1)[1] for line in f]
        finally:
            tmp_scp.unlink(missing_ok=True)
    with atomic_open(scp, "w", encoding="utf-8") as f:
        for k, off in zip(keys, offsets):
            f.write(f"{k} {ark}:{off}\n")
    return scp
