"""The one freshness rule: an output is kept only when it was made from the same inputs and settings.

Every stage that writes an output directory records in it, as ``DIR/.made_from.json``, what it was
made from: the resolved settings (a JSON-able mapping) and the identity of each input file (its
path, size and modification time). On a re-run the stage compares the record with what it would
use now:

* the same: the outputs are kept and the stage is skipped;
* anything differs, or there is no record: the stage redoes its work (the record is removed
  first, so an interrupted run never looks finished) and writes the new record at the end;
* for stages whose work is expensive and whose directory a researcher names (training,
  DropAdapt), ``strict=True`` makes a difference an error naming the differing keys, so a finished
  experiment is never silently replaced: a new directory or ``--overwrite`` proceeds.

Inputs are compared by size and modification time, not content: files are written through
:mod:`dropclass_lib.atomic`, which keeps an unchanged rewritten file with its old time, so an
unchanged upstream result does not make the rest of a recipe redo its work.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from dropclass_lib.atomic import atomic_open
from dropclass_lib.errors import UserError

RECORD = ".made_from.json"
log = logging.getLogger("provenance")


def input_identity(paths: Iterable[str | os.PathLike]) -> dict[str, list[int]]:
    """``{absolute path: [size, mtime_ns]}`` of each input file; a missing input is an error."""
    identity = {}
    for p in paths:
        path = Path(p)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise UserError(f"{path} does not exist") from None
        identity[str(path.resolve())] = [st.st_size, st.st_mtime_ns]
    return identity


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def differences(old: Mapping, new: Mapping) -> list[str]:
    """Dotted names of what differs between two records (``settings.optim.lr``, ``input /path``)."""
    diffs = []
    a, b = {}, {}
    _flatten("", old.get("settings", {}), a)
    _flatten("", new.get("settings", {}), b)
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            diffs.append(f"settings.{key} ({a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r})")
    old_in, new_in = old.get("inputs", {}), new.get("inputs", {})
    for path in sorted(set(old_in) | set(new_in)):
        if path not in old_in:
            diffs.append(f"new input {path}")
        elif path not in new_in:
            diffs.append(f"input no longer used: {path}")
        elif old_in[path] != new_in[path]:
            diffs.append(f"input changed: {path}")
    return diffs


def read_record(out_dir: str | os.PathLike) -> dict | None:
    path = Path(out_dir) / RECORD
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable: treated as no record, so the stage redoes its work
    return record if isinstance(record, dict) else None


class Stage:
    """What :func:`stage` yields: ``fresh`` tells whether the outputs can be kept."""

    def __init__(self, out_dir: Path, record: dict, fresh: bool, reasons: list[str]):
        self.out_dir, self.record, self.fresh, self.reasons = out_dir, record, fresh, reasons


@contextmanager
def stage(out_dir: str | os.PathLike, settings: Mapping, inputs: Iterable[str | os.PathLike],
          outputs: Iterable[str] = (), strict: bool = False, overwrite: bool = False,
          what: str = "") -> Iterator[Stage]:
    """Apply the freshness rule to ``out_dir``.

    ``outputs`` are file names inside ``out_dir`` that must exist for the outputs to count as
    made. The body runs in any case and must do nothing when ``stage.fresh``; when it finishes
    without an exception after doing its work, the new record is written.
    """
    out_dir = Path(out_dir)
    new = {"settings": json.loads(json.dumps(settings, default=str)), "inputs": input_identity(inputs)}
    old = read_record(out_dir)
    missing = [n for n in outputs if not (out_dir / n).exists()]
    reasons = differences(old, new) if old is not None else []
    fresh = old is not None and not reasons and not missing
    label = what or str(out_dir)
    if not fresh and old is not None and reasons and strict and not overwrite:
        shown = "; ".join(reasons[:6]) + (f"; and {len(reasons) - 6} more" if len(reasons) > 6 else "")
        raise UserError(f"{label} was made with other inputs or settings ({shown}): "
                        "use a new directory, or --overwrite to redo it")
    if fresh:
        log.info("%s is up to date: skipping", label)
    else:
        if old is not None:
            log.info("%s: redoing (%s)", label, "; ".join(reasons) if reasons else f"missing {', '.join(missing)}")
        (out_dir / RECORD).unlink(missing_ok=True)
    st = Stage(out_dir, new, fresh, reasons)
    yield st
    if not fresh:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_open(out_dir / RECORD, "w", encoding="utf-8") as f:
            json.dump(new, f, indent=1, sort_keys=True)
            f.write("\n")
