"""YAML configuration files mapped onto dataclasses.

Every knob is a dataclass field with a default and a docstring-comment in the recipe's
``conf/*.yaml``. A key the dataclass does not know is an error naming the key, the file and
its line: a misspelt option must never be silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, Mapping, TypeVar

import yaml

from dropclass_lib.errors import InputFileError, UserError

T = TypeVar("T")


def _key_lines(path: str) -> dict[tuple[str, ...], int]:
    """Map each key path (``("model", "name")``) to its 1-based line in the YAML file."""
    with open(path, encoding="utf-8") as f:
        try:
            root = yaml.compose(f)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            raise InputFileError(path, mark.line + 1 if mark else None, f"invalid YAML ({getattr(err, 'problem', err)})") from None
    lines: dict[tuple[str, ...], int] = {}

    def walk(node, prefix):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = prefix + (str(k.value),)
                lines[key] = k.start_mark.line + 1
                walk(v, key)

    walk(root, ())
    return lines


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise UserError(f"{where}: expected a mapping, got {value!r}")
        return value  # handled by from_dict
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads 1e-3 (no dot) as a string; it is a float to anyone writing a config
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise UserError(f"{where}: expected {tp.__name__}, got {value!r}")
    if origin in (list, tuple) and not isinstance(value, (list, tuple)):
        raise UserError(f"{where}: expected a list, got {value!r}")
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def from_dict(cls: type[T], data: Mapping[str, Any] | None, source: str = "<config>",
              lines: Mapping[tuple[str, ...], int] | None = None, prefix: tuple[str, ...] = ()) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise :class:`UserError`."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = prefix + (str(key),)
        if key not in fields:
            lineno = (lines or {}).get(path)
            known = ", ".join(sorted(fields))
            raise InputFileError(source, lineno, f"unknown config key {'.'.join(path)!r} (known keys here: {known})")
        tp = hints[key]
        if typing.get_origin(tp) is typing.Union:
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if value is None:
                kwargs[key] = None
                continue
            tp = args[0] if len(args) == 1 else Any
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise InputFileError(source, (lines or {}).get(path), f"{'.'.join(path)}: expected a mapping")
            kwargs[key] = from_dict(tp, value, source, lines, path)
        else:
            try:
                kwargs[key] = _coerce(value, tp, ".".join(path)) if tp is not Any else value
            except UserError as err:
                raise InputFileError(source, (lines or {}).get(path), str(err)) from None
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except (ValueError, UserError) as err:
            raise UserError(f"{source}: {err}") from None
    return obj


def load_config(path: str | os.PathLike | None, cls: type[T], overrides: Mapping[str, Any] | None = None) -> T:
    """Load YAML ``path`` into dataclass ``cls``; ``overrides`` are dotted keys (``optim.lr``).
    ``path`` None: the dataclass defaults, with the overrides."""
    if path is None:
        path, lines, data = f"the defaults of {cls.__name__}", {}, {}
    else:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise UserError(f"config file {path} does not exist")
        lines = _key_lines(path)
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    if not isinstance(data, Mapping):
        raise InputFileError(path, 1, "the top level must be a mapping of keys to values")
    for dotted, value in (overrides or {}).items():
        lines.pop(tuple(dotted.split(".")), None)  # an error in an override is not on the file's line
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(cls, data, path, lines)


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)


def save_config(obj: Any, path: str | os.PathLike) -> None:
    """Write the resolved configuration (every key, defaults included) as YAML, atomically."""
    from dropclass_lib.atomic import atomic_open

    with atomic_open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(to_dict(obj), f, sort_keys=False)


def parse_value(text: str) -> Any:
    """A YAML value, except that numbers like ``1e30`` (a string to YAML 1.1) are numbers."""
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["optim.lr=0.1", ...]`` (command-line ``--set`` options) → ``{"optim.lr": 0.1}``."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {item!r}")
        try:
            overrides[key.strip()] = parse_value(value)
        except yaml.YAMLError as err:
            raise UserError(f"--set {item!r}: value is not valid YAML ({err})") from None
    return overrides
