"""Builders chosen by name from a configuration (extractors, heads): a registry, not if-chains.

A built object carries ``build_spec = {"name": ..., "kwargs": ...}`` (the keyword options it
was built with) so that :mod:`dropclass_lib.model_io` can rebuild it from a saved file.
"""

from __future__ import annotations

import inspect
from typing import Any

from dropclass_lib.errors import UserError


class Registry(dict):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str):
        """Class/function decorator adding a builder under ``name``."""
        def deco(builder):
            if name in self:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self[name] = builder
            return builder
        return deco

    def check_kwargs(self, name: str, kwargs: dict) -> None:
        """Raise :class:`UserError` naming any keyword the builder does not take."""
        params = inspect.signature(self[name]).parameters
        unknown = sorted(k for k in kwargs if k not in params)
        if unknown:
            known = ", ".join(params)
            raise UserError(f"{self.kind} {name!r} has no option {', '.join(map(repr, unknown))} (options: {known})")

    def build(self, name: str, *args, **kwargs) -> Any:
        if name not in self:
            raise UserError(f"unknown {self.kind} {name!r} (known: {', '.join(sorted(self))})")
        self.check_kwargs(name, kwargs)
        try:
            obj = self[name](*args, **kwargs)
        except (ValueError, TypeError) as err:
            raise UserError(f"{self.kind} {name!r}: {err}") from None
        obj.build_spec = {"name": name, "kwargs": dict(kwargs)}
        return obj
