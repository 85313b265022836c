"""What a training directory is recorded with, and its freshness check, without torch.

:func:`open_training_dir` is the check :func:`dropclass_lib.training.trainer.train` makes before
its first iteration. ``steps/train_xvector.py`` makes it first with ``write=False``, so that a
re-run that finds its training done (or refuses a changed setting) ends before torch is loaded:
a recipe re-run starts one such process per training.
"""

from __future__ import annotations

import os

from dropclass_lib import provenance
from dropclass_lib.config import to_dict
from dropclass_lib.training.config import TrainConfig

# Keys that say how a run is carried out, not what it computes: they may differ between a
# training and its resume, and do not make a finished directory stale.
OPERATIONAL_KEYS = {("train", "checkpoint_every"), ("train", "keep_checkpoints"), ("train", "log_every"),
                    ("train", "device"), ("data", "num_workers"), ("data", "prefetch_batches")}

FINAL_MODEL = "final.pt"
OPTIMIZER_FILE = "optimizer.pt"  # the optimiser's final state, for a continuing call (trainer docstring)


def provenance_settings(cfg: TrainConfig) -> dict:
    """The configuration a training directory is recorded with: all but ``OPERATIONAL_KEYS``."""
    full = to_dict(cfg)
    return {section: ({k: v for k, v in values.items() if (section, k) not in OPERATIONAL_KEYS}
                      if isinstance(values, dict) else values) for section, values in full.items()}


def open_training_dir(cfg: TrainConfig, data_dir: str | os.PathLike, exp_dir: str | os.PathLike, *,
                      made_from: dict | None = None, inputs: tuple = (), save_optimizer: bool = False,
                      overwrite: bool = False, write: bool = True) -> provenance.Stage:
    """The strict freshness rule on ``exp_dir`` for a training of ``cfg`` on ``data_dir``
    (arguments as :func:`~dropclass_lib.training.trainer.train`); ``write=False`` only reads."""
    settings = {"config": provenance_settings(cfg), **(made_from or {})}
    outputs = (FINAL_MODEL, OPTIMIZER_FILE) if save_optimizer else (FINAL_MODEL,)
    return provenance.open_stage(exp_dir, settings, [*provenance.data_inputs(data_dir), *inputs], outputs=outputs,
                                 strict=True, overwrite=overwrite, what=f"training {exp_dir}", write=write,
                                 partial=("checkpoint_*.pt",))
