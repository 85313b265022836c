"""Training checkpoints: ``exp/NAME/checkpoint_<iterations done>.pt``, written atomically.

A checkpoint holds everything that decides the rest of the run: extractor, head, optimizer,
LR scheduler, sampler position and pool, the DropClass state, the resolved configuration and
the RNG states of python, numpy, torch (and CUDA). They are our own files, read back with
``weights_only=False``; the stable product of training is ``final.pt`` (:mod:`model_io`).
"""

from __future__ import annotations

import os
import pickle
import pickletools
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from dropclass_lib.atomic import atomic_path
from dropclass_lib.errors import UserError

PATTERN = re.compile(r"^checkpoint_(\d+)\.pt$")
# Keys every checkpoint holds and a model file does not.
CHECKPOINT_KEYS = frozenset({"extractor", "head", "optimizer", "scheduler", "sampler", "dropclass", "config",
                             "world_size", "iteration", "rng"})


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
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a Python file: a full disk raises OSError
        torch.save({**payload, "iteration": iteration, "rng": rng_state()}, f)
    for _, old in list_checkpoints(exp_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _pickled_strings(path: str | os.PathLike) -> set[str]:
    """The strings in a torch file's pickle, read without running it (empty if not a torch file)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("/data.pkl")]
            if len(names) != 1:
                return set()
            return {arg for _, arg, _ in pickletools.genops(z.read(names[0])) if isinstance(arg, str)}
    except (OSError, zipfile.BadZipFile, ValueError, pickle.UnpicklingError):
        return set()


def is_checkpoint_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a torch file holding a checkpoint's keys (a checkpoint cannot be
    loaded with ``weights_only=True``, so its pickle is inspected instead)."""
    return CHECKPOINT_KEYS <= _pickled_strings(path)


def is_model_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a trained-model file (:mod:`dropclass_lib.model_io`)."""
    from dropclass_lib.model_io import FORMAT

    return {"format", FORMAT} <= _pickled_strings(path)


def not_a_model_error(path: str | os.PathLike) -> UserError:
    exp_dir = Path(path).parent
    return UserError(f"{path} is a training checkpoint (for --resume), not a model file: give "
                     f"{exp_dir / 'final.pt'}, which training writes when it finishes (an unfinished training "
                     f"continues with steps/train_xvector.py --resume --dir {exp_dir} ...)")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # a truncated or foreign file raises one of several types
        raise UserError(f"cannot read checkpoint {path}: {err}") from None
    from dropclass_lib.model_io import FORMAT

    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        raise UserError(f"{path} is a trained model file (final.pt of a finished training), not a training "
                        "checkpoint: there is nothing to resume; --resume continues from the newest "
                        "checkpoint_<iter>.pt of --dir")
    missing = sorted(CHECKPOINT_KEYS - set(payload)) if isinstance(payload, dict) else ["all"]
    if missing:
        raise UserError(f"{path}: not a training checkpoint (missing: {', '.join(missing)})")
    return payload
