"""The one freshness rule: an output is kept only when it was made from the same inputs, settings and code.

Every stage that writes an output directory records in it, as ``DIR/.made_from.json``, what it was
made from: the resolved settings (a JSON-able mapping), the identity of each input file (its
path, size and modification time) and the code (a digest of every source file of the library and
of the project script the process runs, :func:`code_identity`). On a re-run the stage compares
the record with what it would use now:

* the same: the outputs are kept and the stage is skipped;
* anything differs, or there is no record: the stage redoes its work (the record is removed
  first, so an interrupted run never looks finished) and writes the new record at the end;
* for stages whose work is expensive and whose directory a researcher names (training,
  DropAdapt), ``strict=True`` makes a difference an error naming the differing keys, so a finished
  experiment is never silently replaced: a new directory or ``--overwrite`` proceeds. A strict
  stage writes its record (marked ``"complete": false``) *before* its work, so a partly done
  directory (an interrupted training) is held to the same settings: resuming it with them works,
  with other ones is an error. A strict directory whose outputs exist but that has no record
  (made by another version) is an error too, never silently redone.

A stage that writes several independent pieces into one shared directory (the feature jobs)
records each piece under its own ``record_name``.

An input up to :data:`DIGESTED_INPUT_BYTES` (the lists and tables of a data directory: wav.scp,
feats.scp, trials; the archives of a small corpus) is compared by its size and a digest of its
content, so a list deleted and written again with the same lines (a recipe's data preparation run
again, which rebuilds its directories) leaves the stages that read it as they are; it is read only
when its size or time differs from the record's. A larger one (the feature archives of a large
corpus) is compared by size and modification time, never read at a check: files are written
through :mod:`dropclass_lib.atomic`, which keeps an unchanged rewritten file with its old time, so
an unchanged upstream result does not make the rest of a recipe redo its work.

The code counts as a whole library rather than the modules a stage imports: nearly every script
imports most of it, and an output made by a fixed bug's code is stale however far the fix is from
the stage's own module. A new version of the toolkit therefore redoes the cheap stages and makes
the strict ones ask for ``--overwrite`` (or a new directory), naming the changed files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from dropclass_lib.atomic import MAX_COMPARE_BYTES, atomic_open
from dropclass_lib.errors import UserError

RECORD = ".made_from.json"
LIBRARY = Path(__file__).resolve().parent
PROJECT = LIBRARY.parent
SCRIPT_DIRS = ("steps", "utils", "local", "bench", "egs")  # where the project's runnable scripts live
# Inputs up to this size are identified by their content (every list of a VoxCeleb2-sized data
# directory is below it); larger ones by size and time. The bound up to which an atomic write
# compares a file with the one it replaces, for the same reason.
DIGESTED_INPUT_BYTES = MAX_COMPARE_BYTES
log = logging.getLogger("provenance")


@functools.cache
def code_identity() -> dict[str, str]:
    """``{path relative to the project: SHA-256 prefix}`` of the code an output is made by: every
    Python source of the library and, when this process runs one of the project's scripts
    (``steps/``, ``utils/``, ...), that script. Computed once per process."""
    files = sorted(LIBRARY.rglob("*.py"))
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    if main:
        script = Path(main).resolve()
        if (script.suffix == ".py" and PROJECT in script.parents
                and script.relative_to(PROJECT).parts[0] in SCRIPT_DIRS):
            files.append(script)
    return {str(f.relative_to(PROJECT)): hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in files}


def input_identity(paths: Iterable[str | os.PathLike], known: Mapping[str, list] | None = None) -> dict[str, list]:
    """``{absolute path: [size, mtime_ns, content digest]}`` of each input file, the digest only
    for files up to :data:`DIGESTED_INPUT_BYTES`; a missing input is an error. A file whose size
    and time are those of its entry in ``known`` (the identities of the stage's record) takes that
    entry's digest instead of being read again, so a re-run that finds everything unchanged reads
    no input."""
    known = known or {}
    identity = {}
    for p in paths:
        path = Path(p)
        try:
            st = path.stat()
            key = str(path.resolve())
            ident = [st.st_size, st.st_mtime_ns]
            if st.st_size <= DIGESTED_INPUT_BYTES:
                before = known.get(key)
                if isinstance(before, list) and len(before) == 3 and before[:2] == ident:
                    ident.append(before[2])
                else:
                    with open(path, "rb") as f:
                        ident.append(hashlib.file_digest(f, "sha256").hexdigest()[:32])
        except FileNotFoundError:
            raise UserError(f"{path} does not exist") from None
        identity[key] = ident
    return identity


def same_input(old: list, new: list) -> bool:
    """Whether two identities of one input file name the same content: by size and digest where
    both have a digest, else by size and modification time."""
    if len(old) == len(new) == 3:
        return old[0] == new[0] and old[2] == new[2]
    return old == new


def data_inputs(data_dir: str | os.PathLike, *names: str) -> list[Path]:
    """The inputs of a stage that reads a data dir's features: ``names`` (default feats.scp and
    utt2spk; utt2num_frames too when present) and every archive feats.scp points into. The
    archives count because a recomputed feature set can leave feats.scp byte-identical (same
    offsets) while the matrices differ; an archive rewritten with the same bytes keeps its time."""
    data_dir = Path(data_dir)
    paths = [data_dir / n for n in (names or ("feats.scp", "utt2spk"))]
    if not names and (data_dir / "utt2num_frames").is_file():
        paths.append(data_dir / "utt2num_frames")
    return paths + scp_archives(data_dir / "feats.scp")


def scp_archives(scp: str | os.PathLike) -> list[Path]:
    """The archive files the entries ``key ark:offset`` of ``scp`` point into (none for a missing scp)."""
    archives = set()
    try:
        with open(scp, encoding="utf-8") as f:
            for line in f:
                fields = line.split(None, 1)
                if len(fields) == 2:
                    ark, sep, offset = fields[1].strip().rpartition(":")
                    archives.add(ark if sep and offset.isdigit() else fields[1].strip())
    except FileNotFoundError:
        return []
    # A missing archive is left out: the stage that reads it names the scp line that points to it.
    return [Path(a) for a in sorted(archives) if not a.endswith("|") and os.path.exists(a)]


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def differences(old: Mapping, new: Mapping) -> list[str]:
    """Dotted names of what differs between two records (``settings.optim.lr``, ``input /path``,
    ``code changed: FILE``)."""
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
        elif not same_input(old_in[path], new_in[path]):
            diffs.append(f"input changed: {path}")
    if "code" not in old:
        diffs.append("code not recorded (made by an earlier version of the toolkit)")
    else:
        old_code, new_code = old["code"], new.get("code", {})
        changed = sorted(p for p in set(old_code) | set(new_code) if old_code.get(p) != new_code.get(p))
        if changed:
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            diffs.append(f"code changed: {', '.join(changed[:3])}{more}")
    return diffs


def read_record(out_dir: str | os.PathLike, record_name: str = RECORD) -> dict | None:
    path = Path(out_dir) / record_name
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable: treated as no record, so the stage redoes its work
    return record if isinstance(record, dict) else None


class Stage:
    """What :func:`stage` yields: ``fresh`` tells whether the outputs can be kept; ``redo``
    whether earlier outputs were made otherwise (other settings or inputs) and must be cleared
    by the body before it works (a strict stage under ``overwrite``, whose partial outputs
    would otherwise be resumed)."""

    def __init__(self, out_dir: Path, record: dict, fresh: bool, reasons: list[str], redo: bool = False,
                 record_path: Path | None = None):
        self.out_dir, self.record, self.fresh, self.reasons, self.redo = out_dir, record, fresh, reasons, redo
        self.record_path = record_path

    def finish(self) -> None:
        """Record that the work is done (nothing to do when the stage was fresh)."""
        if not self.fresh and self.record_path is not None:
            _write_record(self.record_path, self.record)


def _write_record(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")


def open_stage(out_dir: str | os.PathLike, settings: Mapping, inputs: Iterable[str | os.PathLike],
               outputs: Iterable[str] = (), strict: bool = False, overwrite: bool = False,
               what: str = "", record_name: str = RECORD, write: bool = True,
               partial: Iterable[str] = ()) -> Stage:
    """Check ``out_dir`` against the freshness rule; :meth:`Stage.finish` records the work done.

    ``partial``: glob patterns of the files an unfinished run of a strict stage leaves
    (checkpoints); a strict directory with neither outputs nor these holds no work to protect.

    ``outputs`` are file names inside ``out_dir`` that must exist for the outputs to count as
    made. The record is ``out_dir/record_name``; ``write=False`` only reads it (the other
    processes of a distributed training, where rank 0 writes). :func:`stage` is the usual form.
    """
    out_dir = Path(out_dir)
    outputs = list(outputs)
    record_path = out_dir / record_name
    old = read_record(out_dir, record_name)
    known = old.get("inputs") if old is not None and isinstance(old.get("inputs"), dict) else None
    new = {"settings": json.loads(json.dumps(settings, default=str)), "inputs": input_identity(inputs, known),
           "code": code_identity()}
    missing = [n for n in outputs if not (out_dir / n).exists()]
    reasons = differences(old, new) if old is not None else []
    complete = old is not None and old.get("complete", True)
    fresh = complete and not reasons and not missing
    label = what or str(out_dir)
    started = [n for n in outputs if (out_dir / n).exists()] + [p.name for g in partial for p in out_dir.glob(g)]
    if strict and not overwrite and started:
        if old is not None and reasons:
            shown = "; ".join(reasons[:6]) + (f"; and {len(reasons) - 6} more" if len(reasons) > 6 else "")
            raise UserError(f"{label} was made with other inputs, settings or code ({shown}): "
                            "use a new directory, or --overwrite to redo it")
        made = [n for n in outputs if (out_dir / n).exists()]
        if old is None and made:  # (partial work without a record is checked by the stage itself)
            raise UserError(f"{label} holds {', '.join(made)} but no record of what it was made from "
                            f"({record_name}): use a new directory, or --overwrite to redo it")
    redo = strict and overwrite and bool(started) and (bool(reasons) or old is None)
    if fresh:
        log.info("%s is up to date: skipping", label)
    elif write:
        if old is not None and (reasons or missing):
            log.info("%s: redoing (%s)", label, "; ".join(reasons) if reasons else f"missing {', '.join(missing)}")
        if strict:
            _write_record(record_path, {**new, "complete": False})
        else:
            record_path.unlink(missing_ok=True)
    return Stage(out_dir, new, fresh, reasons, redo, record_path if write else None)


@contextmanager
def stage(out_dir: str | os.PathLike, settings: Mapping, inputs: Iterable[str | os.PathLike],
          outputs: Iterable[str] = (), strict: bool = False, overwrite: bool = False,
          what: str = "", record_name: str = RECORD, write: bool = True,
          partial: Iterable[str] = ()) -> Iterator[Stage]:
    """Apply the freshness rule to ``out_dir`` (arguments as :func:`open_stage`).

    The body runs in any case and must do nothing when ``stage.fresh``; when it finishes
    without an exception after doing its work, the new record is written.
    """
    st = open_stage(out_dir, settings, inputs, outputs, strict, overwrite, what, record_name, write, partial)
    yield st
    st.finish()
