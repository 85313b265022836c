"""Builders chosen by name from a configuration (extractors, heads): a registry, not if-chains.

A built object carries ``build_spec = {"name": ..., "kwargs": ...}`` (the keyword options it
was built with) so that :mod:`dropclass_lib.model_io` can rebuild it from a saved file.

Option names are checked here against the builder's signature; option values are checked by
the builders themselves, with :func:`require` and the ``check_*`` helpers below, which raise
:class:`~dropclass_lib.errors.OptionValueError` (one line for the user). Any other exception
from a builder is a bug and propagates with its traceback.
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any

from dropclass_lib.errors import OptionValueError, UserError


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
        except OptionValueError as err:
            raise OptionValueError(f"{self.kind} {name!r}: {err}") from None
        obj.build_spec = {"name": name, "kwargs": dict(kwargs)}
        return obj


def require(ok: bool, message: str) -> None:
    """A builder's check of an option value: :class:`OptionValueError` with ``message`` unless ``ok``."""
    if not ok:
        raise OptionValueError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_ints(minimum: int = 1, **options: Any) -> None:
    """Every option an integer >= ``minimum`` (sizes, counts; ``True`` is not an integer)."""
    for name, value in options.items():
        require(_is_int(value) and value >= minimum, f"{name} must be an integer >= {minimum}, got {value!r}")


def check_int_lists(minimum: int = 1, **options: Any) -> None:
    """Every option a non-empty list of integers >= ``minimum`` (per-layer sizes)."""
    for name, values in options.items():
        ok = isinstance(values, (list, tuple)) and len(values) > 0 and all(_is_int(v) and v >= minimum for v in values)
        require(ok, f"{name} must be a non-empty list of integers >= {minimum}, got {values!r}")


def check_numbers(**options: Any) -> None:
    """Every option a finite real number (an int or a float, not a bool)."""
    for name, value in options.items():
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        require(ok, f"{name} must be a finite number, got {value!r}")


def check_bools(**options: Any) -> None:
    """Every option ``true`` or ``false``."""
    for name, value in options.items():
        require(isinstance(value, bool), f"{name} must be true or false, got {value!r}")
