"""The trained-model file (``exp/NAME/final.pt``) that every later stage reads.

Format (a ``torch.save``d dict, loadable with ``weights_only=True``)::

    {"format": "dropclass-model", "version": 1,
     "extractor": {"name": str, "kwargs": dict, "state": state_dict},
     "head":      {"name": str, "kwargs": dict, "state": state_dict},
     "classes": [speaker ids, index = head row],
     "config": dict}           # the resolved training configuration

``head.kwargs`` includes ``num_classes`` and ``emb_dim`` so the head is rebuilt exactly.
"""

from __future__ import annotations

import inspect
import os
import pickle
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dropclass_lib.atomic import atomic_path
from dropclass_lib.errors import UserError

FORMAT, VERSION = "dropclass-model", 1


@dataclass
class TrainedModel:
    extractor: nn.Module
    head: nn.Module
    classes: list[str]
    config: dict[str, Any] = field(default_factory=dict)


def _spec(module: nn.Module, what: str) -> dict[str, Any]:
    spec = getattr(module, "build_spec", None)
    if spec is None:
        raise ValueError(f"the {what} was not made by build_{what}(): cannot record how to rebuild it")
    return spec


def save_model(path: str | os.PathLike, extractor: nn.Module, head: nn.Module, classes: list[str],
               config: dict[str, Any] | None = None) -> None:
    """Write the model file atomically; ``extractor``/``head`` must come from the registries."""
    if len(classes) != head.num_classes:
        raise ValueError(f"{len(classes)} class names for a head of {head.num_classes} classes")
    ext, hd = _spec(extractor, "extractor"), _spec(head, "head")
    payload = {
        "format": FORMAT, "version": VERSION,
        "extractor": {"name": ext["name"], "kwargs": ext["kwargs"],
                      "state": {k: v.detach().cpu() for k, v in extractor.state_dict().items()}},
        "head": {"name": hd["name"], "kwargs": {**hd["kwargs"], "emb_dim": head.emb_dim, "num_classes": head.num_classes},
                 "state": {k: v.detach().cpu() for k, v in head.state_dict().items()}},
        "classes": list(classes),
        "config": config or {},
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)  # through a Python file, so that a full disk raises OSError


def load_weights(module: nn.Module, state: dict, path: str | os.PathLike, what: str) -> None:
    """``module.load_state_dict(state)``; weights that do not fit (missing or unexpected
    tensors, other shapes) are a :class:`UserError` naming the file, not a traceback."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        if len(detail) > 400:
            detail = detail[:400] + " ..."
        raise UserError(f"{path}: the stored {what} weights do not fit the {what} they are loaded into "
                        f"({detail}); the file is damaged or was written by other code") from None


def extractor_input_dim(extractor: nn.Module) -> int | None:
    """The feature dimension an extractor built by the registry takes (None if unknown)."""
    from dropclass_lib.models import EXTRACTORS

    spec = getattr(extractor, "build_spec", None)
    if spec is None:
        return None
    if "input_dim" in spec["kwargs"]:
        return int(spec["kwargs"]["input_dim"])
    param = inspect.signature(EXTRACTORS[spec["name"]]).parameters.get("input_dim")
    return None if param is None or param.default is inspect.Parameter.empty else int(param.default)


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> TrainedModel:
    """Rebuild extractor and head from ``path``; both are returned in eval mode."""
    from dropclass_lib.heads import build_head
    from dropclass_lib.models import build_extractor

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"model file {path} does not exist (train it first)")
    from dropclass_lib.training.checkpoint import is_checkpoint_file, not_a_model_error

    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # objects a model file never holds, e.g. a checkpoint's RNG state
        if is_checkpoint_file(path):
            raise not_a_model_error(path) from None
        raise UserError(f"{path}: not a readable model file ({' '.join(str(err).split()[:12])} ...)") from None
    except Exception as err:  # torch raises several types for a corrupt or foreign file
        raise UserError(f"{path}: not a readable model file ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        if is_checkpoint_file(path):
            raise not_a_model_error(path)
        raise UserError(f"{path}: not a {FORMAT} file")
    if payload.get("version") != VERSION:
        raise UserError(f"{path}: model file version {payload.get('version')}, this code reads version {VERSION}")
    extractor = build_extractor(payload["extractor"]["name"], **payload["extractor"]["kwargs"])
    load_weights(extractor, payload["extractor"]["state"], path, "extractor")
    hkw = dict(payload["head"]["kwargs"])
    head = build_head(payload["head"]["name"], hkw.pop("emb_dim"), hkw.pop("num_classes"), **hkw)
    load_weights(head, payload["head"]["state"], path, "head")
    device = torch.device(map_location) if isinstance(map_location, str) else map_location
    return TrainedModel(extractor.to(device).eval(), head.to(device).eval(), list(payload["classes"]),
                        payload.get("config", {}))
