"""Model averaging (WeSpeaker's ``average_model``): the parameter-wise mean of several
checkpoints of one training run, usually its last few, written as a model file.

Extractor and head are averaged tensor by tensor, BatchNorm running means and variances
included (they are floating-point buffers like the weights); integer buffers -- BatchNorm's
``num_batches_tracked`` -- are counts, not estimates, and are taken from the newest input.
Means are taken in float64 and stored in each tensor's own dtype.

The averaged weights go into the architecture of a *template* model file (normally the run's
own ``final.pt``): a checkpoint holds weights, not the registry names and options that rebuild
the modules, and the template also gives the class names and the training configuration.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import torch

from dropclass_lib.errors import UserError
from dropclass_lib.model_io import TrainedModel, load_model, load_weights, save_model
from dropclass_lib.training.checkpoint import is_checkpoint_file, list_checkpoints, load_checkpoint

log = logging.getLogger(__name__)
PARTS = ("extractor", "head")


def last_checkpoints(exp_dir: str | os.PathLike, last: int | None) -> list[Path]:
    """The newest ``last`` checkpoints the trainer kept in ``exp_dir`` (all of them for None), oldest first."""
    found = [p for _, p in list_checkpoints(exp_dir)]
    if not found:
        raise UserError(f"{exp_dir} holds no checkpoint_<iter>.pt (the trainer writes them every "
                        "train.checkpoint_every iterations)")
    if last is not None:
        if last < 1:
            raise UserError(f"--last must be at least 1, got {last}")
        if last > len(found):
            raise UserError(f"--last {last}: {exp_dir} keeps only {len(found)} checkpoint(s) "
                            f"({', '.join(p.name for p in found)}); train with a larger train.keep_checkpoints "
                            "to average more")
        found = found[-last:]
    return found


def read_weights(path: str | os.PathLike) -> tuple[dict[str, dict[str, torch.Tensor]], list[str] | None]:
    """``({"extractor": state, "head": state}, head row names or None)`` of a checkpoint or a model file."""
    if is_checkpoint_file(path):
        ckpt = load_checkpoint(path)
        names = ckpt.get("dropclass", {}).get("classes", {}).get("row_names")
        return {part: ckpt[part] for part in PARTS}, names
    model = load_model(path)
    return {"extractor": model.extractor.state_dict(), "head": model.head.state_dict()}, model.classes


def average_states(states: Sequence[dict[str, torch.Tensor]], sources: Sequence[str]) -> dict[str, torch.Tensor]:
    """Floating-point tensors: their mean; others (``num_batches_tracked``): the last state's."""
    if not states:
        raise ValueError("nothing to average")
    first = states[0]
    for state, source in zip(states[1:], sources[1:]):
        if state.keys() != first.keys():
            diff = sorted(set(state) ^ set(first))
            raise UserError(f"{source}: its tensors differ from those of {sources[0]} ({', '.join(diff[:5])}): "
                            "not a checkpoint of the same model")
        for key, value in state.items():
            if value.shape != first[key].shape:
                raise UserError(f"{source}: {key} has shape {tuple(value.shape)}, {tuple(first[key].shape)} in "
                                f"{sources[0]}: not a checkpoint of the same model")
    out = {}
    for key, value in first.items():
        if value.is_floating_point():
            total = sum(s[key].detach().double() for s in states)
            out[key] = (total / len(states)).to(value.dtype)
        else:
            out[key] = states[-1][key].clone()
    return out


def average_model(inputs: Sequence[str | os.PathLike], template: str | os.PathLike, out: str | os.PathLike) -> TrainedModel:
    """Average the checkpoints or model files ``inputs`` (oldest first) into the architecture of
    the model file ``template``; write the result to ``out`` and return it."""
    sources = [os.fspath(p) for p in inputs]
    model = load_model(template)
    weights, names = zip(*(read_weights(p) for p in sources))
    for source, rows in zip(sources, names):
        if rows is not None and list(rows) != model.classes:
            raise UserError(f"{source}: its head rows are other classes than those of {template} "
                            "(another training run?): average checkpoints of the run the template comes from")
    for part in PARTS:
        state = average_states([w[part] for w in weights], sources)
        load_weights(getattr(model, part), state, f"{template} (with the weights of {sources[0]})", part)
    save_model(out, model.extractor, model.head, model.classes, model.config)
    log.info("averaged %d model(s) (%s) -> %s", len(sources), ", ".join(Path(s).name for s in sources), out)
    return model
