"""Lazy access to Kaldi feature archives for training.

:class:`FeatIndex` keeps, per utterance, only compact numpy columns: the archive (an int32
index into a short list of paths), the byte offset of the matrix in it (int64), its number of
frames (int32) and its class (int32), plus the utterance id as fixed-width bytes. That is
about 20 bytes + the id length per utterance (1M utterances: tens of MB), and no per-utterance
Python objects survive loading. Utterances are also grouped by class (``class_order`` /
``class_start``, CSR style) for class-balanced sampling.

:class:`CropDataset` reads a whole batch of equal-length crops: for uncompressed float/double
matrices (``FM``/``DM``) it seeks straight to the first cropped row, so only the crop is read;
Kaldi-compressed matrices (``CM*``) are decoded whole by kaldiio and then cropped.
"""

from __future__ import annotations

import os
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np
import torch

from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import c_sorted, iter_table, read_kv

_DTYPES = {b"FM": np.dtype("<f4"), b"DM": np.dtype("<f8")}


def parse_rxfile(path: str, lineno: int, line: str, value: str) -> tuple[str, int]:
    """Split a feats.scp value ``ark_path:offset``."""
    ark, sep, offset = value.rpartition(":")
    if not sep or not ark or not offset.isdigit() or ark.endswith("|"):
        raise InputFileError(path, lineno, "expected 'utt-id ark-path:byte-offset' (as written by kaldiio / copy-feats)", line)
    return ark, int(offset)


def read_matrix_header(f, offset: int, where: str) -> tuple[bytes, int, int, int]:
    """Return ``(kind, rows, cols, data_start)`` for the binary Kaldi matrix at ``offset``."""
    f.seek(offset)
    if f.read(2) != b"\0B":
        raise UserError(f"{where}: no binary Kaldi matrix at byte {offset}")
    kind = b""
    while (c := f.read(1)) not in (b" ", b""):
        kind += c
        if len(kind) > 4:
            break
    if kind not in _DTYPES:
        return kind, -1, -1, -1
    head = f.read(10)
    if len(head) != 10 or head[0] != 4 or head[5] != 4:
        raise UserError(f"{where}: truncated matrix header at byte {offset}")
    rows, cols = struct.unpack("<i", head[1:5])[0], struct.unpack("<i", head[6:10])[0]
    return kind, rows, cols, f.tell()


class MatrixReader:
    """Reads row ranges of archived matrices, keeping the archives open (one set per process)."""

    def __init__(self, ark_paths: list[str]):
        self.ark_paths = ark_paths
        self._files: dict[int, object] = {}

    def __getstate__(self):
        return {"ark_paths": self.ark_paths, "_files": {}}

    def _file(self, ark: int):
        f = self._files.get(ark)
        if f is None:
            try:
                f = self._files[ark] = open(self.ark_paths[ark], "rb")
            except OSError as err:
                raise UserError(f"cannot open feature archive {self.ark_paths[ark]}: {err.strerror}") from None
        return f

    def _decode(self, ark: int, offset: int) -> np.ndarray:
        """The whole matrix at ``offset``, decoded by kaldiio (compressed kinds) from the open archive."""
        where = self.ark_paths[ark]
        return kaldiio.load_mat(f"{where}:{offset}", fd_dict={where: self._file(ark)})

    def shape(self, ark: int, offset: int) -> tuple[int, int]:
        where = self.ark_paths[ark]
        kind, rows, cols, _ = read_matrix_header(self._file(ark), offset, where)
        if rows < 0:
            rows, cols = self._decode(ark, offset).shape
        return rows, cols

    def rows(self, ark: int, offset: int, start: int, count: int) -> np.ndarray:
        where = self.ark_paths[ark]
        f = self._file(ark)
        kind, rows, cols, data = read_matrix_header(f, offset, where)
        if rows < 0:
            mat = self._decode(ark, offset)
            if start + count > mat.shape[0]:
                raise UserError(f"{where}:{offset}: matrix has {mat.shape[0]} rows, need {start + count}")
            return np.asarray(mat[start:start + count], dtype=np.float32)
        if start + count > rows:
            raise UserError(f"{where}:{offset}: matrix has {rows} rows, need {start + count} (utt2num_frames out of date?)")
        dtype = _DTYPES[kind]
        f.seek(data + start * cols * dtype.itemsize)
        buf = f.read(count * cols * dtype.itemsize)
        if len(buf) != count * cols * dtype.itemsize:
            raise UserError(f"{where}: archive truncated at byte {offset}")
        return np.frombuffer(buf, dtype=dtype).reshape(count, cols).astype(np.float32)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


@dataclass
class FeatIndex:
    utt_ids: np.ndarray      # fixed-width bytes, LC_ALL=C order of feats.scp
    ark_paths: list[str]
    ark_index: np.ndarray    # int32, per utterance
    offsets: np.ndarray      # int64, per utterance
    num_frames: np.ndarray   # int32, per utterance
    labels: np.ndarray       # int32 class index per utterance
    classes: list[str]       # speaker ids, C-sorted; index = class label
    class_order: np.ndarray  # int32 utterance indices grouped by class
    class_start: np.ndarray  # int64, len(classes) + 1: class c owns class_order[class_start[c]:class_start[c+1]]
    feat_dim: int
    num_skipped_short: int = 0

    def __len__(self) -> int:
        return len(self.offsets)

    def nbytes(self) -> int:
        arrays = (self.utt_ids, self.ark_index, self.offsets, self.num_frames, self.labels, self.class_order, self.class_start)
        return sum(a.nbytes for a in arrays)

    def class_counts(self) -> np.ndarray:
        return np.diff(self.class_start)

    @classmethod
    def from_data_dir(cls, data_dir: str | os.PathLike, min_frames: int = 1) -> "FeatIndex":
        """Index ``feats.scp`` + ``utt2spk`` (+ ``utt2num_frames`` if present, else matrix headers).

        Utterances shorter than ``min_frames`` are left out; classes are the speakers with at
        least one remaining utterance.
        """
        data_dir = Path(data_dir)
        feats_scp = data_dir / "feats.scp"
        if not feats_scp.is_file():
            raise UserError(f"{data_dir}: no feats.scp (compute features first)")
        utt2spk = read_kv(data_dir / "utt2spk")
        frames_path = data_dir / "utt2num_frames"
        utt2frames = ({k: (ln, v) for ln, k, (v,), _ in iter_table(frames_path, max_fields=2)}
                      if frames_path.is_file() else None)
        ark_ids: dict[str, int] = {}
        ark_paths: list[str] = []
        reader = MatrixReader(ark_paths)  # shares the growing list of archive paths
        ids, spk_of, ark_index, offsets, frames = [], [], array("i"), array("q"), array("i")
        skipped = 0
        for lineno, utt, (value,), line in iter_table(feats_scp, max_fields=2):
            ark, offset = parse_rxfile(str(feats_scp), lineno, line, value)
            if ark not in ark_ids:
                ark_ids[ark] = len(ark_paths)
                ark_paths.append(ark)
            ark_idx = ark_ids[ark]
            if utt not in utt2spk:
                raise InputFileError(feats_scp, lineno, f"utterance {utt!r} is not in {data_dir / 'utt2spk'}", line)
            if utt2frames is not None:
                if utt not in utt2frames:
                    raise InputFileError(feats_scp, lineno, f"utterance {utt!r} is not in {frames_path}", line)
                fl, n = utt2frames[utt]
                if not n.isdigit():
                    raise InputFileError(frames_path, fl, "number of frames must be a non-negative integer", f"{utt} {n}")
                n = int(n)
            else:
                n = reader.shape(ark_idx, offset)[0]
            if n < min_frames:
                skipped += 1
                continue
            ids.append(utt.encode())
            spk_of.append(utt2spk[utt])
            ark_index.append(ark_idx)
            offsets.append(offset)
            frames.append(n)
        if not ids:
            raise UserError(f"{feats_scp}: no utterance has at least {min_frames} frames ({skipped} listed)")
        del utt2spk, utt2frames
        classes = c_sorted(set(spk_of))
        class_id = {s: i for i, s in enumerate(classes)}
        labels = np.fromiter((class_id[s] for s in spk_of), dtype=np.int32, count=len(spk_of))
        del spk_of
        order = np.argsort(labels, kind="stable").astype(np.int32)
        start = np.zeros(len(classes) + 1, dtype=np.int64)
        np.cumsum(np.bincount(labels, minlength=len(classes)), out=start[1:])
        feat_dim = reader.shape(ark_index[0], offsets[0])[1]
        reader.close()
        return cls(np.array(ids, dtype=bytes), ark_paths, np.frombuffer(ark_index, dtype=np.int32).copy(),
                    np.frombuffer(offsets, dtype=np.int64).copy(), np.frombuffer(frames, dtype=np.int32).copy(),
                    labels, classes, order, start, feat_dim, skipped)


class CropDataset(torch.utils.data.Dataset):
    """``dataset[spec]`` reads the crops a :class:`~dropclass_lib.training.sampler.BatchSpec`
    names: ``{"feats": (B, T, D) float32, "classes": (B,) int64, "iteration": int}``; an
    utterance shorter than the crop is tiled (repeated from its start) to the crop length."""

    def __init__(self, index: FeatIndex):
        self.index = index
        self.reader = MatrixReader(index.ark_paths)

    def __getitem__(self, spec) -> dict:
        ix = self.index
        crops = np.empty((len(spec.utts), spec.length, ix.feat_dim), dtype=np.float32)
        for row, (utt, start) in enumerate(zip(spec.utts, spec.starts)):
            n = min(spec.length, int(ix.num_frames[utt]) - int(start))
            rows = self.reader.rows(int(ix.ark_index[utt]), int(ix.offsets[utt]), int(start), n)
            crops[row] = rows if n == spec.length else rows[np.arange(spec.length) % n]
        return {"feats": torch.from_numpy(crops),
                "classes": torch.from_numpy(ix.labels[spec.utts].astype(np.int64)),
                "iteration": spec.iteration}
