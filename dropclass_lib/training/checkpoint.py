"""Training checkpoints: ``exp/NAME/checkpoint_<iterations done>.pt``, written atomically.

A checkpoint holds everything that decides the rest of the run: extractor, head, optimizer,
LR scheduler, sampler position and pool, the DropClass state, the resolved configuration and
the RNG states of python, numpy, torch (and CUDA). They are our own files, read back with
``weights_only=False``; the stable product of training is ``final.pt`` (:mod:`model_io`).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from dropclass_lib.atomic import atomic_path
from dropclass_lib.errors import UserError

PATTERN = re.compile(r"^checkpoint_(\d+)\.pt$")


def checkpoint_path(exp_dir: str | os.PathLike, iteration: int) -> Path:
    return Path(exp_dir) / f"checkpoint_{iteration:07d}.pt"


def list_checkpoints(exp_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(iterations done, path)`` of the checkpoints in ``exp_dir``, oldest first."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        return []
    found = [(int(m.group(1)), exp_dir / name) for name in os.listdir(exp_dir) if (m := PATTERN.match(name))]
    return sorted(found)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(exp_dir: str | os.PathLike, iteration: int, payload: dict, keep: int) -> Path:
    """Write the checkpoint for ``iteration`` atomically, then delete all but the newest ``keep``."""
    path = checkpoint_path(exp_dir, iteration)
    with atomic_path(path) as tmp:
        torch.save({**payload, "iteration": iteration, "rng": rng_state()}, tmp)
    for _, old in list_checkpoints(exp_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # a truncated or foreign file raises one of several types
        raise UserError(f"cannot read checkpoint {path}: {err}") from None
