"""The one command-line layer of every ``python -m`` entry: parse a config, fail in one line.

Each command is a config dataclass (one ``--key VALUE`` option per field, help from the field
docstrings, see :mod:`configs.loader`) read by :func:`parse`::

    config = parse("rl.compare", "Compare two rl.eval results.", CompareConfig, argv)

A bad option, config key or value, and any set-up problem the command raises as a
:class:`UsageError`, end the command with one line on stderr and exit status 2::

    rl.compare: error: names must be two non-empty names, got ('A',)

An input the command skips and goes on without is one warning line (:func:`warn`).
This module imports nothing from the project's other packages.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from configs.loader import ConfigError, add_arguments, from_args


class UsageError(Exception):
    """A bad argument or set-up problem: one line on stderr and exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (no usage block), exit 2."""

    def error(self, message: str):
        fail(self.prog, message)


def fail(prog: str, message) -> None:
    """Print ``prog: error: <first line of message>`` to stderr and exit with status 2."""
    print(f"{prog}: error: {_first_line(message, 'failed')}", file=sys.stderr)
    raise SystemExit(2)


def warn(prog: str, message) -> None:
    """Print ``prog: warning: <first line of message>`` to stderr; the command goes on."""
    print(f"{prog}: warning: {_first_line(message, 'warning')}", file=sys.stderr)


def _first_line(message, fallback: str) -> str:
    text = str(message).strip()
    return text.splitlines()[0] if text else fallback


def parse(prog: str, description: str, cls, argv: Sequence[str] | None = None):
    """The ``cls`` config of command ``prog`` from ``argv`` (default ``sys.argv[1:]``).

    The options are those of :func:`configs.loader.add_arguments` (``--config FILE`` and one
    ``--key VALUE`` per field; the fields named in ``cls.POSITIONAL`` are positional arguments);
    a bad one ends the command through :func:`fail`.
    """
    parser = Parser(prog=prog, description=description)
    add_arguments(parser, cls)
    args = parser.parse_args(argv)
    try:
        return from_args(cls, args)
    except ConfigError as error:
        fail(prog, error)


def fmt(value, spec: str = ".3f", missing: str = "n/a") -> str:
    """``value`` formatted with ``spec``, or ``missing`` when it is None or NaN."""
    if value is None or value != value:  # NaN is the one value unequal to itself
        return missing
    return format(value, spec)


def output_dir(path: str, option: str = "--out") -> str:
    """Check that ``path`` can be (or already is) a writable folder; return it. Raises
    :class:`UsageError` naming ``option``."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{option} {path!r} exists and is not a folder")
    existing = path if os.path.isdir(path) else _nearest_existing(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(existing):
        raise UsageError(f"{option} {path!r}: {existing!r} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path!r}: {existing!r} is not writable")
    return path


def _nearest_existing(path: str) -> str:
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path
