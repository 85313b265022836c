"""Embedding extraction: full-length utterances through an extractor, long ones in chunks.

Chunking: an utterance of T frames is cut into ``n = ceil(T / chunk_frames)`` consecutive
chunks of equal length (up to one frame), and its embedding is the frame-count-weighted mean
of the chunk embeddings (as Kaldi's ``extract-xvectors`` averages its chunks). A chunk shorter
than ``min_frames`` (by default the extractor's receptive field) is padded by repeating its
frames cyclically, as Kaldi's ``--pad-input``.

Batching: utterances are read in blocks of ``block_utts``; within a block the chunks are sorted
by length and consecutive ones share a batch (at most ``batch_size`` chunks and, padded to the
longest, at most ``max_batch_frames`` frames), so similar lengths go together. A batch is
zero-padded and the extractor is given each chunk's length (``extractor(x, lengths)``), so that
the padding takes no part in its pooled statistics (:mod:`dropclass_lib.models.pooling`): every
chunk's embedding is the one it gets alone, to float rounding. An extractor whose ``forward``
takes no ``lengths`` is never given padding: only chunks of identical length share its batches.

On CUDA the extractor runs under bf16 autocast where the GPU supports bf16 (the poolings keep
their statistics in float32); on the CPU it runs in float32.
"""

from __future__ import annotations

import inspect
import logging
import math
from contextlib import nullcontext
from typing import Iterable, Iterator

import numpy as np

# torch is imported inside the functions that run the extractor: a step whose embeddings are up to
# date (a re-run) then never pays its import, about 3 s of start-up per step.
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


def takes_lengths(extractor: torch.nn.Module) -> bool:
    """Whether ``extractor.forward`` accepts the ``lengths`` of a padded batch."""
    try:
        return "lengths" in inspect.signature(extractor.forward).parameters
    except (TypeError, ValueError):
        return False


def length_batches(lengths: list[int], batch_size: int, max_batch_frames: int | None) -> list[list[int]]:
    """Consecutive runs of ``lengths`` (sorted ascending) as batches of indices: at most
    ``batch_size`` each and, padded to their last (longest) member, at most ``max_batch_frames``
    frames (a longer single item is a batch of its own); None: only equal lengths go together."""
    batches: list[list[int]] = []
    for i, n in enumerate(lengths):
        if batches:
            last = batches[-1]
            fits = (n == lengths[last[0]] if max_batch_frames is None else (len(last) + 1) * n <= max_batch_frames)
            if len(last) < batch_size and fits:
                last.append(i)
                continue
        batches.append([i])
    return batches


def _autocast(device: torch.device):
    """bf16 autocast on a CUDA device that supports it; nothing elsewhere."""
    import torch

    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _embed_block(extractor: torch.nn.Module, feats: list[np.ndarray], chunk_frames: int, batch_size: int,
                 device: torch.device, min_frames: int, max_batch_frames: int | None) -> np.ndarray:
    import torch

    padded = takes_lengths(extractor)
    chunks = [(u, s, n) for u, f in enumerate(feats) for s, n in chunk_bounds(f.shape[0], chunk_frames)]
    inputs = sorted(((_pad_cyclic(feats[u][s:s + n], min_frames), u, n) for u, s, n in chunks),
                    key=lambda c: c[0].shape[0])
    sums: np.ndarray | None = None
    for batch in length_batches([x.shape[0] for x, _, _ in inputs], batch_size,
                                max_batch_frames if padded else None):
        items = [inputs[i] for i in batch]
        longest = items[-1][0].shape[0]
        x = np.zeros((len(items), longest, items[0][0].shape[1]), dtype=np.float32)
        for row, (chunk, _, _) in zip(x, items):
            row[:chunk.shape[0]] = chunk
        x = torch.from_numpy(x).to(device)
        with _autocast(device):
            if padded:
                lengths = torch.tensor([chunk.shape[0] for chunk, _, _ in items], device=device)
                emb = extractor(x, lengths=lengths)
            else:
                emb = extractor(x)
        emb = emb.double().cpu().numpy()
        if sums is None:
            sums = np.zeros((len(feats), emb.shape[1]))
        for (_, u, n), e in zip(items, emb):
            sums[u] += n * e
    frames = np.array([f.shape[0] for f in feats], dtype=np.float64)
    return (sums / frames[:, None]).astype(np.float32)


DEFAULT_MAX_BATCH_FRAMES = 2000
"""Padded frames per forward pass when extracting. Measured on one CPU thread, Kaldi's TDNN on 400
utterances of 5-400 frames: 4.7 s with 2000, 6.2 s with 8000, 7.1 s with 32000 (the activations
leave the cache), 6.3 s for equal-length batches only. A GPU wants far more (--max-batch-frames)."""


def embed_utterances(extractor: torch.nn.Module, feats: Iterable[tuple[str, np.ndarray]],
                     chunk_frames: int = 10000, batch_size: int = 32, device: str | torch.device = "cpu",
                     min_frames: int | None = None, block_utts: int = 512,
                     max_batch_frames: int | None = DEFAULT_MAX_BATCH_FRAMES) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(utt, embedding)`` in input order for ``(utt, frames x dims)`` feature matrices.

    ``extractor`` maps a ``(batch, frames, dims)`` float tensor (and, if it takes them, the
    ``lengths`` of a padded batch) to ``(batch, emb_dim)``; it is run in eval mode under
    ``torch.inference_mode`` on ``device``. ``max_batch_frames``: the padded size of a batch
    (None: no padding, only chunks of equal length share a batch).
    """
    if chunk_frames < 1 or batch_size < 1 or (max_batch_frames is not None and max_batch_frames < 1):
        raise ValueError("chunk_frames, batch_size and max_batch_frames must be positive")
    import torch

    device = torch.device(device)
    extractor = extractor.to(device).eval()
    if min_frames is None:
        min_frames = int(getattr(extractor, "receptive_field", 1))
    block: list[tuple[str, np.ndarray]] = []

    def flush():
        embs = _embed_block(extractor, [f for _, f in block], chunk_frames, batch_size, device, min_frames,
                            max_batch_frames)
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
