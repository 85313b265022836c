"""Batch plans: which utterances, which crop, for every iteration.

:class:`BatchSampler` is iterated by the DataLoader in the training process and yields one
:class:`BatchSpec` per iteration; workers only read what a spec names. Everything random about
iteration ``i`` comes from a generator seeded by ``(seed, i)``; the only state carried between
iterations is the class pool of the balanced sampler. Because the DataLoader runs ahead of
training, the sampler remembers the pool after each planned batch (:meth:`state_after`), and a
checkpoint after iteration ``i`` stores exactly that: resuming replays the same batches.

* ``balanced`` (the paper): each batch holds distinct classes, one random utterance each;
  classes are drawn without replacement from a pool, refilled with a fresh permutation of
  the sampleable classes when it runs dry (classes already in the batch being filled are
  moved to the end of the new pool), so every class is drawn once per cycle. Classes
  dropped by DropClass are skipped.
* ``random``: utterances drawn uniformly (without replacement within a batch) from the
  sampleable classes.

Under DDP every rank plans the same *global* batch of ``batch_size x world_size`` and keeps its
own slice, so ranks see distinct classes (balanced) or utterances (random). The crop length is
drawn per batch in ``[min_frames, max_frames]``; an utterance shorter than it either shortens the
whole batch's crop to its length (``short_utts="shorten"``, Kaldi's egs) or is tiled to the crop
length (``"repeat"``, WeSpeaker's repeat padding: corpora of short words then still let longer
corpora train on long crops).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count

import numpy as np

from dropclass_lib.training.data import FeatIndex
from dropclass_lib.training.dropclass import DropSchedule

SAMPLER_STREAM = 0x5A3B1E


@dataclass
class BatchSpec:
    iteration: int
    utts: np.ndarray     # int64 utterance indices into the FeatIndex
    starts: np.ndarray   # int64 first frame of each crop
    length: int          # crop length (frames), the same for the whole batch


class BatchSampler:
    def __init__(self, index: FeatIndex, schedule: DropSchedule, kind: str, batch_size: int,
                 min_frames: int, max_frames: int, seed: int, rank: int = 0, world_size: int = 1,
                 short_utts: str = "shorten"):
        global_size = batch_size * world_size
        if kind == "balanced" and global_size > schedule.num_sampleable():
            raise ValueError(f"a balanced batch needs {global_size} distinct classes (batch_size x processes) "
                             f"but only {schedule.num_sampleable()} can be sampled: lower data.batch_size "
                             "or dropclass.num_drop")
        self.index, self.schedule, self.kind = index, schedule, kind
        self.batch_size, self.global_size = batch_size, global_size
        self.min_frames, self.max_frames, self.seed = min_frames, max_frames, seed
        self.short_utts = short_utts
        self.rank = rank
        self.next_iteration = 0
        self.pool = np.zeros(0, dtype=np.int64)
        self._after: dict[int, dict] = {}

    def state_dict(self) -> dict:
        return {"next_iteration": self.next_iteration, "pool": self.pool.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.next_iteration = int(state["next_iteration"])
        self.pool = np.asarray(state["pool"], dtype=np.int64)
        self._after.clear()

    def state_after(self, iteration: int) -> dict:
        """The sampler state once ``iteration`` had been planned; forgets older iterations."""
        for old in [i for i in self._after if i < iteration]:
            del self._after[old]
        next_iteration, pool = self._after[iteration]
        return {"next_iteration": next_iteration, "pool": pool.tolist()}

    def __iter__(self):
        for _ in count():
            spec = self.plan(self.next_iteration)
            self.next_iteration += 1
            self._after[spec.iteration] = (self.next_iteration, self.pool)  # pools are replaced, never modified
            yield spec

    def plan(self, iteration: int) -> BatchSpec:
        rng = np.random.default_rng([self.seed, SAMPLER_STREAM, iteration])
        sampleable = self.schedule.sampleable(iteration)
        utts = self._balanced(rng, sampleable) if self.kind == "balanced" else self._random(rng, sampleable)
        utts = utts[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
        frames = self.index.num_frames[utts].astype(np.int64)
        length = int(rng.integers(self.min_frames, self.max_frames + 1))
        if self.short_utts == "shorten":
            length = min(length, int(frames.min()))
        # utterances shorter than the crop (only with "repeat") start at 0 and are tiled by the dataset
        starts = (rng.random(len(utts)) * np.maximum(frames - length + 1, 1)).astype(np.int64)
        return BatchSpec(iteration, utts, starts, length)

    def _balanced(self, rng: np.random.Generator, sampleable: np.ndarray) -> np.ndarray:
        n = self.global_size
        pool = self.pool[sampleable[self.pool]]
        chosen = np.zeros(0, dtype=np.int64)
        while len(chosen) < n:
            if len(pool) == 0:
                # a fresh cycle over the sampleable classes; those already in this batch go last
                fresh = rng.permutation(np.flatnonzero(sampleable))
                in_batch = np.isin(fresh, chosen)
                pool = np.concatenate([fresh[~in_batch], fresh[in_batch]])
            take = n - len(chosen)
            chosen, pool = np.concatenate([chosen, pool[:take]]), pool[take:]
        self.pool = pool
        ix = self.index
        picks = (rng.random(n) * ix.class_counts()[chosen]).astype(np.int64)
        return ix.class_order[ix.class_start[chosen] + picks].astype(np.int64)

    def _random(self, rng: np.random.Generator, sampleable: np.ndarray) -> np.ndarray:
        ix = self.index
        classes = np.flatnonzero(sampleable)
        counts = ix.class_counts()[classes]
        cum = np.concatenate([[0], np.cumsum(counts)])
        pos = rng.choice(cum[-1], self.global_size, replace=self.global_size > cum[-1])
        which = np.searchsorted(cum, pos, side="right") - 1
        return ix.class_order[ix.class_start[classes[which]] + pos - cum[which]].astype(np.int64)
