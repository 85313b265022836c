"""Speaker-embedding extractors, chosen by name from a registry.

Every extractor maps features ``(batch, frames, feat_dim)`` to embeddings ``(batch, emb_dim)``
and exposes ``emb_dim``, ``receptive_field`` and ``after_step(iteration)`` (a hook the trainer
calls after each optimiser step: the F-TDNN applies its semi-orthogonal constraint there).

    build_extractor("tdnn", input_dim=30, frame_dims=[256, 256, 256, 256, 750], emb_dim=256)

The returned module carries ``build_spec = {"name": ..., "kwargs": ...}`` so that
:mod:`dropclass_lib.model_io` can rebuild it from a saved file.
"""

from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

from dropclass_lib.errors import UserError

EXTRACTORS: dict[str, Callable[..., nn.Module]] = {}


def register_extractor(name: str):
    """Class/function decorator adding a builder to :data:`EXTRACTORS` under ``name``."""
    def deco(builder):
        if name in EXTRACTORS:
            raise ValueError(f"extractor {name!r} registered twice")
        EXTRACTORS[name] = builder
        return builder
    return deco


def check_kwargs(kind: str, name: str, builder: Callable, kwargs: dict) -> None:
    """Raise :class:`UserError` naming any keyword the builder does not take."""
    params = inspect.signature(builder).parameters
    unknown = sorted(k for k in kwargs if k not in params)
    if unknown:
        known = ", ".join(p for p in params if p != "self")
        raise UserError(f"{kind} {name!r} has no option {', '.join(map(repr, unknown))} (options: {known})")


def build_extractor(name: str, **kwargs) -> nn.Module:
    if name not in EXTRACTORS:
        raise UserError(f"unknown extractor {name!r} (known: {', '.join(sorted(EXTRACTORS))})")
    builder = EXTRACTORS[name]
    check_kwargs("extractor", name, builder, kwargs)
    try:
        model = builder(**kwargs)
    except (ValueError, TypeError) as err:
        raise UserError(f"extractor {name!r}: {err}") from None
    model.build_spec = {"name": name, "kwargs": dict(kwargs)}
    return model


from dropclass_lib.models import etdnn, ftdnn, tdnn  # noqa: E402,F401  (registers the extractors)
