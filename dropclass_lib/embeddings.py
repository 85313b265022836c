"""Embedding extraction: full-length utterances through an extractor, long ones in chunks.

Chunking: an utterance of T frames is cut into ``n = ceil(T / chunk_frames)`` consecutive
chunks of equal length (up to one frame), and its embedding is the frame-count-weighted mean
of the chunk embeddings (as Kaldi's ``extract-xvectors`` averages its chunks). A chunk shorter
than ``min_frames`` (by default the extractor's receptive field) is padded by repeating its
frames cyclically, as Kaldi's ``--pad-input``.

Batching never pads: statistics pooling would average the padding in. Utterances are read in
blocks of ``block_utts``; within a block the chunks are sorted by length and only chunks of
*identical* length share a batch (at most ``batch_size`` of them). Corpora with many utterances
of one length (chunked long recordings, fixed-length segments) batch well; elsewhere most
batches hold one chunk, which is what Kaldi does for every chunk.
"""

from __future__ import annotations

import logging
import math
from itertools import groupby
from typing import Iterable, Iterator

import numpy as np
import torch

from dropclass_lib.tables import c_sorted

log = logging.getLogger(__name__)


def chunk_bounds(num_frames: int, chunk_frames: int) -> list[tuple[int, int]]:
    """``(start, length)`` of the near-equal chunks covering ``num_frames`` frames."""
    n = max(1, math.ceil(num_frames / chunk_frames))
    base, extra = divmod(num_frames, n)
    bounds, start = [], 0
    for i in range(n):
        length = base + (1 if i < extra else 0)
        bounds.append((start, length))
        start += length
    return bounds


def _pad_cyclic(x: np.ndarray, min_frames: int) -> np.ndarray:
    if x.shape[0] >= min_frames:
        return x
    return x[np.arange(min_frames) % x.shape[0]]


def _embed_block(extractor: torch.nn.Module, feats: list[np.ndarray], chunk_frames: int, batch_size: int,
                 device: torch.device, min_frames: int) -> np.ndarray:
    chunks = [(u, s, n) for u, f in enumerate(feats) for s, n in chunk_bounds(f.shape[0], chunk_frames)]
    chunks.sort(key=lambda c: c[2])
    sums: np.ndarray | None = None
    for _, group in groupby(chunks, key=lambda c: c[2]):
        group = list(group)
        for b in range(0, len(group), batch_size):
            batch = group[b:b + batch_size]
            x = np.stack([_pad_cyclic(feats[u][s:s + n], min_frames) for u, s, n in batch])
            emb = extractor(torch.from_numpy(x).to(device=device, dtype=torch.float32)).double().cpu().numpy()
            if sums is None:
                sums = np.zeros((len(feats), emb.shape[1]))
            for (u, _, n), e in zip(batch, emb):
                sums[u] += n * e
    frames = np.array([f.shape[0] for f in feats], dtype=np.float64)
    return (sums / frames[:, None]).astype(np.float32)


def embed_utterances(extractor: torch.nn.Module, feats: Iterable[tuple[str, np.ndarray]],
                     chunk_frames: int = 10000, batch_size: int = 32, device: str | torch.device = "cpu",
                     min_frames: int | None = None, block_utts: int = 512) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(utt, embedding)`` in input order for ``(utt, frames x dims)`` feature matrices.

    ``extractor`` maps a ``(batch, frames, dims)`` float tensor to ``(batch, emb_dim)``; it is
    run in eval mode under ``torch.inference_mode`` on ``device``.
    """
    if chunk_frames < 1 or batch_size < 1:
        raise ValueError("chunk_frames and batch_size must be positive")
    device = torch.device(device)
    extractor = extractor.to(device).eval()
    if min_frames is None:
        min_frames = int(getattr(extractor, "receptive_field", 1))
    block: list[tuple[str, np.ndarray]] = []

    def flush():
        embs = _embed_block(extractor, [f for _, f in block], chunk_frames, batch_size, device, min_frames)
        out = list(zip([u for u, _ in block], embs))
        block.clear()
        return out

    with torch.inference_mode():
        for utt, f in feats:
            if f.ndim != 2 or f.shape[0] == 0:
                raise ValueError(f"utterance {utt!r}: features of shape {f.shape}, expected frames x dims")
            block.append((utt, f))
            if len(block) == block_utts:
                yield from flush()
        if block:
            yield from flush()


def speaker_means(keys: list[str], matrix: np.ndarray, utt2spk: dict[str, str]
                  ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(speakers, mean embeddings, utterance counts)``, speakers sorted as LC_ALL=C."""
    spk_of = np.array([utt2spk[k] for k in keys])
    speakers = c_sorted(set(spk_of.tolist()))
    index = {s: i for i, s in enumerate(speakers)}
    inv = np.array([index[s] for s in spk_of])
    counts = np.bincount(inv, minlength=len(speakers))
    sums = np.zeros((len(speakers), matrix.shape[1]))
    np.add.at(sums, inv, matrix.astype(np.float64))
    return speakers, (sums / counts[:, None]).astype(np.float32), counts
