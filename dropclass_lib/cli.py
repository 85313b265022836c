"""Shared plumbing for the command-line entry points in steps/, utils/ and local/."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from dropclass_lib.errors import UserError


def setup_logging(verbose: bool = False) -> None:
    """Kaldi-like log lines on stderr: ``LOG (prog) message``."""
    prog = sys.argv[0].rsplit("/", 1)[-1] if sys.argv else "dropclass"
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=f"%(levelname)s ({prog}) %(message)s",
        stream=sys.stderr,
    )


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the line breaks of a script's docstring (its usage examples) and shows defaults."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse with Kaldi-style option names: ``--min-frames`` and ``--min_frames`` both work."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_args(self, args: Sequence[str] | None = None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        normalised = []
        for a in args:
            if a.startswith("--") and "_" in a.split("=", 1)[0]:
                name, *rest = a.split("=", 1)
                a = "=".join([name.replace("_", "-"), *rest])
            normalised.append(a)
        return super().parse_args(normalised, namespace)


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run ``main(argv)``; a :class:`UserError` becomes one ``ERROR:`` line and exit status 1."""
    setup_logging()
    try:
        status = main(argv)
    except UserError as err:
        print(f"ERROR ({sys.argv[0].rsplit('/', 1)[-1]}): {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
