"""User-facing errors.

Anything the user can fix (a malformed file, a bad option, a missing input) raises
:class:`UserError`; command-line entry points turn it into one ``ERROR: ...`` line on stderr
and exit status 1, never a traceback.
"""

from __future__ import annotations

import os


class UserError(Exception):
    """An error caused by the user's input, reported without a traceback."""


class InputFileError(UserError):
    """A malformed line in an input file: names the file, the line number and the text."""

    def __init__(self, path: str | os.PathLike, lineno: int | None, message: str, line: str | None = None):
        self.path = os.fspath(path)
        self.lineno = lineno
        self.line = line
        self.message = message
        where = self.path if lineno is None else f"{self.path}:{lineno}"
        text = f"{where}: {message}"
        if line is not None:
            text += f": {line.rstrip(chr(10))!r}"
        super().__init__(text)


class OptionValueError(UserError):
    """A model or head option (a config value) that its builder cannot take.

    Builders raise it for the values a user sets; :meth:`dropclass_lib.registry.Registry.build`
    prefixes the builder's name. Any other exception from a builder is a programming error and
    keeps its traceback.
    """
