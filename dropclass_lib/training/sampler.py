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

``batch_size`` is the *global* batch. Under DDP every rank plans the same global batch (its
utterances, crop starts and crop length) and keeps its own slice of it: rank ``r`` of ``W``
gets positions ``[r*B//W, (r+1)*B//W)``, so ranks see distinct classes (balanced) or
utterances (random), a balanced batch needs ``batch_size`` sampleable classes whatever the
number of processes, and the slices of ``W`` processes put together are exactly the batch one
process would train on. When ``W`` does not divide ``B`` the slices differ in size by one;
:attr:`BatchSampler.rank_loss_weight` scales each rank's mean loss so that DDP's averaging of
the gradients over ranks gives the mean over the global batch. Every rank also knows the
classes of the whole batch (:meth:`BatchSampler.batch_classes`), which is what DropClass's
``drop_per_batch`` keeps in the softmax: the same rows on every rank, with no communication.

The crop length is drawn per batch in ``[min_frames, max_frames]``; an utterance shorter than it
either shortens the whole batch's crop to its length (``short_utts="shorten"``, Kaldi's egs) or
is tiled to the crop length (``"repeat"``, WeSpeaker's repeat padding: corpora of short words
then still let longer corpora train on long crops).
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
    utts: np.ndarray     # int64 utterance indices into the FeatIndex (this rank's slice)
    starts: np.ndarray   # int64 first frame of each crop
    length: int          # crop length (frames), the same for the whole global batch


def rank_slice(batch_size: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s positions in a global batch of ``batch_size`` split over ``world_size``."""
    return slice(rank * batch_size // world_size, (rank + 1) * batch_size // world_size)


class BatchSampler:
    def __init__(self, index: FeatIndex, schedule: DropSchedule, kind: str, batch_size: int,
                 min_frames: int, max_frames: int, seed: int, rank: int = 0, world_size: int = 1,
                 short_utts: str = "shorten"):
        if batch_size < world_size:
            raise ValueError(f"data.batch_size={batch_size} is the global batch, split across the {world_size} "
                             f"processes: it must be at least {world_size}, one utterance per process")
        if kind == "balanced" and batch_size > schedule.num_sampleable():
            raise ValueError(f"a balanced batch needs {batch_size} distinct classes (data.batch_size) "
                             f"but only {schedule.num_sampleable()} can be sampled: lower data.batch_size "
                             "or dropclass.num_drop")
        self.index, self.schedule, self.kind = index, schedule, kind
        self.batch_size = batch_size
        self.min_frames, self.max_frames, self.seed = min_frames, max_frames, seed
        self.short_utts = short_utts
        self.rank, self.world_size = rank, world_size
        self.slice = rank_slice(batch_size, rank, world_size)
        #: this rank's share of the global batch relative to an even split (1.0 when W divides B)
        self.rank_loss_weight = (self.slice.stop - self.slice.start) * world_size / batch_size
        self.next_iteration = 0
        self.pool = np.zeros(0, dtype=np.int64)
        self._after: dict[int, tuple] = {}  # iteration -> (next_iteration, pool, global batch classes)

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
        next_iteration, pool, _ = self._after[iteration]
        return {"next_iteration": next_iteration, "pool": pool.tolist()}

    def batch_classes(self, iteration: int) -> np.ndarray:
        """The classes of the global batch of a planned ``iteration`` (identical on every rank)."""
        return self._after[iteration][2]

    def __iter__(self):
        for _ in count():
            iteration = self.next_iteration
            utts, starts, length = self.plan_global(iteration)
            self.next_iteration += 1
            # pools are replaced, never modified
            self._after[iteration] = (self.next_iteration, self.pool, self.index.labels[utts].astype(np.int64))
            yield self._rank_spec(iteration, utts, starts, length)

    def plan(self, iteration: int) -> BatchSpec:
        """This rank's slice of the global batch of ``iteration``."""
        return self._rank_spec(iteration, *self.plan_global(iteration))

    def plan_global(self, iteration: int) -> tuple[np.ndarray, np.ndarray, int]:
        """``(utts, starts, length)`` of the whole batch of ``iteration``, the same on every rank."""
        rng = np.random.default_rng([self.seed, SAMPLER_STREAM, iteration])
        sampleable = self.schedule.sampleable(iteration)
        utts = self._balanced(rng, sampleable) if self.kind == "balanced" else self._random(rng, sampleable)
        frames = self.index.num_frames[utts].astype(np.int64)
        length = int(rng.integers(self.min_frames, self.max_frames + 1))
        if self.short_utts == "shorten":
            length = min(length, int(frames.min()))
        # utterances shorter than the crop (only with "repeat") start at 0 and are tiled by the dataset
        starts = (rng.random(len(utts)) * np.maximum(frames - length + 1, 1)).astype(np.int64)
        return utts, starts, length

    def _rank_spec(self, iteration: int, utts: np.ndarray, starts: np.ndarray, length: int) -> BatchSpec:
        return BatchSpec(iteration, utts[self.slice], starts[self.slice], length)

    def _balanced(self, rng: np.random.Generator, sampleable: np.ndarray) -> np.ndarray:
        n = self.batch_size
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
        pos = rng.choice(cum[-1], self.batch_size, replace=self.batch_size > cum[-1])
        which = np.searchsorted(cum, pos, side="right") - 1
        return ix.class_order[ix.class_start[classes[which]] + pos - cum[which]].astype(np.int64)
