"""Kaldi text tables (``key value...`` per line): reading with line-accurate errors, sorted writing.

Kaldi sorts tables with ``LC_ALL=C``: byte order of the UTF-8 encoding, which is what
:func:`c_sorted` gives.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, Mapping

from dropclass_lib.atomic import atomic_open
from dropclass_lib.errors import InputFileError


def c_sort_key(key: str) -> bytes:
    return key.encode("utf-8")


def c_sorted(keys: Iterable[str]) -> list[str]:
    """Sort as ``LC_ALL=C sort`` does."""
    return sorted(keys, key=c_sort_key)


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` for the non-blank lines of a text file (1-based numbers).

    Lines are decoded one by one so that a byte sequence that is not UTF-8 is reported on
    its own line (text-mode reading decodes whole buffers and would name a later line). A
    UTF-8 byte-order mark at the start of the file (some Windows editors write one) is not
    part of the first line: it would otherwise become part of the first key.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise InputFileError(path, None, "file does not exist") from None
    except OSError as err:
        raise InputFileError(path, None, f"cannot read file ({err.strerror})") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.rstrip(b"\r\n")
                raise InputFileError(path, lineno, f"not valid UTF-8 text: {text!r}") from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")
            line = line.rstrip("\r\n")
            if line.strip():
                yield lineno, line


def iter_table(path: str | os.PathLike, min_fields: int = 2, max_fields: int | None = None,
               check_sorted: bool = False, check_unique: bool = True
               ) -> Iterator[tuple[int, str, list[str], str]]:
    """Yield ``(lineno, key, fields, line)``; ``fields`` are the whitespace-separated rest.

    Raises :class:`InputFileError` naming the line on a wrong field count, a duplicate key
    (``check_unique``) or a key out of ``LC_ALL=C`` order (``check_sorted``).
    """
    seen: set[str] = set()
    prev: bytes | None = None
    for lineno, line in iter_lines(path):
        if line != line.strip() and line.strip() and line[0].isspace():
            raise InputFileError(path, lineno, "line starts with whitespace", line)
        parts = line.split()
        if len(parts) < min_fields:
            raise InputFileError(path, lineno, f"expected at least {min_fields} fields, got {len(parts)}", line)
        if max_fields is not None and len(parts) > max_fields:
            raise InputFileError(path, lineno, f"expected at most {max_fields} fields, got {len(parts)}", line)
        key = parts[0]
        if check_unique:
            if key in seen:
                raise InputFileError(path, lineno, f"duplicate key {key!r}", line)
            seen.add(key)
        if check_sorted:
            kb = c_sort_key(key)
            if prev is not None and kb < prev:
                raise InputFileError(path, lineno, "not sorted (sort with LC_ALL=C, or run utils/fix_data_dir.py)", line)
            prev = kb
        yield lineno, key, parts[1:], line


def read_kv(path: str | os.PathLike, **kwargs) -> dict[str, str]:
    """Read a two-column table (``key value``); extra fields are an error."""
    return {k: f[0] for _, k, f, _ in iter_table(path, min_fields=2, max_fields=2, **kwargs)}


def read_key_rest(path: str | os.PathLike, **kwargs) -> dict[str, str]:
    """Read ``key rest-of-line`` (e.g. wav.scp, whose value may hold spaces)."""
    return {k: line.split(None, 1)[1].strip() for _, k, _, line in iter_table(path, min_fields=2, **kwargs)}


def read_key_list(path: str | os.PathLike, **kwargs) -> dict[str, list[str]]:
    """Read ``key v1 v2 ...`` (e.g. spk2utt)."""
    return {k: f for _, k, f, _ in iter_table(path, min_fields=2, **kwargs)}


def write_table(path: str | os.PathLike, table: Mapping[str, object]) -> None:
    """Write ``key value`` lines sorted as ``LC_ALL=C`` (lists are space-joined), atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        for key in c_sorted(table):
            value = table[key]
            if isinstance(value, (list, tuple)):
                value = " ".join(map(str, value))
            f.write(f"{key} {value}\n")
