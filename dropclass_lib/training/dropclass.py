"""Which classes take part in training at each iteration: the DropClass schedule.

:class:`ClassState` is the fixed part: the data classes (the speakers of the training data
dir, index = :attr:`FeatIndex.classes`), which of them may be sampled (``data_mask``), the
head row each one's label goes to (``label_map``) and which head rows stay in the softmax even
without data (``row_mask``). The default (:meth:`ClassState.full`) is every class with its own
row. DropAdapt builds other states between its rounds:

* remove classes permanently:      ``data_mask[c] = False``, ``row_mask[label_map[c]] = False``
* ``only_data`` (keep head rows):  ``data_mask[c] = False`` (``row_mask`` unchanged)
* ``combine`` into an "other" row: give the head one more row ``o`` (``num_rows = C + 1``,
  ``row_names`` ending with its name), ``label_map[c] = o`` for the merged classes,
  ``row_mask[c] = False`` for their old rows, ``row_mask[o] = True``.
* ``combine`` into a kept class ``k`` (the authors' code): ``merged_into[c] = k``,
  ``data_mask[c] = False``, ``row_mask[label_map[c]] = False``. The trainer then reads the
  training data through :meth:`ClassState.sampling_index`, in which ``c``'s utterances belong to
  ``k``: ``k`` and the classes merged into it are one sampling unit and one label.

:class:`DropSchedule` adds the periodic part: period ``k = iteration // its_per_drop`` drops
``num_drop`` classes drawn from the sampleable ones with a generator seeded by ``(seed, k)``,
so the drop at any iteration is a pure function of the configuration (exact resume needs no
extra state, and the whole plan is written to ``drop_schedule.tsv`` before training). In a
period, batches come only from ``data_mask & ~dropped`` and the head's active rows are
``(row_mask minus the dropped classes' rows) ∪ rows of the sampleable classes``.
With ``drop_per_batch`` the active rows are instead the rows of the classes in each batch: the
*global* batch under DDP (the union of all ranks' slices, which every rank's sampler knows), so
that every rank computes its softmax over the same rows.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from dropclass_lib.atomic import atomic_open
from dropclass_lib.training.config import DropClassConfig
from dropclass_lib.training.data import FeatIndex

DROP_STREAM = 0xD30C1A55  # separates the drop generator from the sampler's


@dataclass
class ClassState:
    num_classes: int
    data_mask: np.ndarray            # bool (num_classes,)
    label_map: np.ndarray            # int64 (num_classes,), head row per data class
    row_mask: np.ndarray             # bool (num_rows,)
    row_names: list[str] = field(default_factory=list)  # names of the head rows (saved as final.pt classes)
    merged_into: np.ndarray | None = None  # int64 (num_classes,): the data class whose utterances each class's
                                           # join (itself if not merged); None = no class merged

    @property
    def merges(self) -> bool:
        return self.merged_into is not None and bool((self.merged_into != np.arange(self.num_classes)).any())

    @property
    def num_rows(self) -> int:
        return len(self.row_mask)

    @classmethod
    def full(cls, classes: list[str]) -> "ClassState":
        n = len(classes)
        return cls(n, np.ones(n, bool), np.arange(n, dtype=np.int64), np.ones(n, bool), list(classes))

    def validate(self) -> None:
        if self.data_mask.shape != (self.num_classes,) or self.label_map.shape != (self.num_classes,):
            raise ValueError("data_mask and label_map need one entry per data class")
        if len(self.row_names) != self.num_rows:
            raise ValueError(f"{len(self.row_names)} row names for {self.num_rows} head rows")
        if self.label_map.min() < 0 or self.label_map.max() >= self.num_rows:
            raise ValueError("label_map points outside the head rows")
        if not self.data_mask.any():
            raise ValueError("no class left to sample")
        if self.merged_into is not None:
            m = self.merged_into
            if m.shape != (self.num_classes,) or m.min() < 0 or m.max() >= self.num_classes:
                raise ValueError("merged_into needs one data class per data class")
            merged = m != np.arange(self.num_classes)
            if self.data_mask[merged].any() or not self.data_mask[m[merged]].all():
                raise ValueError("a merged class must join a sampleable class and not be sampled itself")

    def state_dict(self) -> dict:
        state = {"data_mask": self.data_mask.tolist(), "label_map": self.label_map.tolist(),
                 "row_mask": self.row_mask.tolist(), "row_names": list(self.row_names)}
        if self.merged_into is not None:
            state["merged_into"] = self.merged_into.tolist()
        return state

    def sampling_index(self, index: FeatIndex) -> FeatIndex:
        """``index`` with each merged class's utterances relabelled to the class it joined (the
        same index when nothing is merged): what batches and labels are drawn from."""
        if not self.merges:
            return index
        labels = self.merged_into[index.labels].astype(np.int32)
        order = np.argsort(labels, kind="stable").astype(np.int32)
        start = np.zeros(len(index.classes) + 1, dtype=np.int64)
        np.cumsum(np.bincount(labels, minlength=len(index.classes)), out=start[1:])
        return dataclasses.replace(index, labels=labels, class_order=order, class_start=start)

    def same_as(self, state: dict) -> bool:
        return self.state_dict() == state


class DropSchedule:
    def __init__(self, cfg: DropClassConfig, state: ClassState, seed: int):
        self.cfg, self.state, self.seed = cfg, state, seed
        self.eligible = np.flatnonzero(state.data_mask)
        self.periodic = cfg.num_drop > 0 and not cfg.drop_per_batch
        if self.periodic and cfg.num_drop >= len(self.eligible):
            raise ValueError(f"dropclass.num_drop={cfg.num_drop} leaves no class of the {len(self.eligible)} available")

    def period(self, iteration: int) -> int:
        return iteration // self.cfg.its_per_drop

    def starts_period(self, iteration: int) -> bool:
        return self.periodic and iteration > 0 and iteration % self.cfg.its_per_drop == 0

    def dropped(self, iteration: int) -> np.ndarray:
        """Sorted data-class ids dropped during ``iteration``'s period (empty for the baseline)."""
        if not self.periodic:
            return np.zeros(0, dtype=np.int64)
        rng = np.random.default_rng([self.seed, DROP_STREAM, self.period(iteration)])
        return np.sort(rng.choice(self.eligible, self.cfg.num_drop, replace=False))

    def sampleable(self, iteration: int) -> np.ndarray:
        """Bool mask over data classes that batches may come from."""
        mask = self.state.data_mask.copy()
        mask[self.dropped(iteration)] = False
        return mask

    def num_sampleable(self) -> int:
        return len(self.eligible) - (self.cfg.num_drop if self.periodic else 0)

    def active_rows(self, iteration: int, batch_classes) -> torch.Tensor | None:
        """Sorted head rows in the softmax for this iteration; ``None`` when it is all of them.

        ``batch_classes`` (array or CPU tensor of data-class ids) are the classes of the global
        batch; only ``drop_per_batch`` looks at them.
        """
        st = self.state
        if self.cfg.drop_per_batch:
            return torch.from_numpy(np.unique(st.label_map[np.asarray(batch_classes)]))
        rows = st.row_mask.copy()
        rows[st.label_map[self.dropped(iteration)]] = False
        rows[st.label_map[self.sampleable(iteration)]] = True
        if rows.all():
            return None
        return torch.from_numpy(np.flatnonzero(rows))

    def state_dict(self) -> dict:
        return {"seed": self.seed, "num_drop": self.cfg.num_drop, "its_per_drop": self.cfg.its_per_drop,
                "drop_per_batch": self.cfg.drop_per_batch, "classes": self.state.state_dict()}

    def write_plan(self, path: str | os.PathLike, num_iters: int, classes: list[str]) -> None:
        """``iteration<TAB>dropped speaker ids (comma-separated)``, one line per drop period."""
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write("iteration\tdropped\n")
            if self.periodic:
                for it in range(0, num_iters, self.cfg.its_per_drop):
                    f.write(f"{it}\t{','.join(classes[c] for c in self.dropped(it))}\n")
