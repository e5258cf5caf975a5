"""Command-line helpers shared by ``corpus.build``, ``corpus.import`` and ``corpus.stats``.

Every corpus command reports a usage or set-up error as one line on stderr
(``corpus.build: error: --n must be a positive integer, got 0``) and exits with 2; an input
it skips and goes on without is one warning line (``corpus.import: warning: skipped 'x.scad': ...``).
"""

from __future__ import annotations

import argparse
import os
import sys


class UsageError(Exception):
    """A bad argument or a set-up problem: reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (no usage block), exit 2."""

    def error(self, message: str):
        fail(self.prog, message)


def fail(prog: str, message: str):
    """Print ``prog: error: message`` (first line only) to stderr and exit with 2."""
    first = str(message).strip().splitlines()[0] if str(message).strip() else "failed"
    print(f"{prog}: error: {first}", file=sys.stderr)
    raise SystemExit(2)


def warn(prog: str, message: str) -> None:
    """Print ``prog: warning: message`` (first line only) to stderr; the command goes on."""
    first = str(message).strip().splitlines()[0] if str(message).strip() else "warning"
    print(f"{prog}: warning: {first}", file=sys.stderr)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def workers_arg(text: str) -> int:
    """argparse type for ``--workers``: ``auto`` (one per CPU) or an integer >= 0 (0: in-process)."""
    if text == "auto":
        return os.cpu_count() or 1
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 0, got {value}")
    return value


def output_dir(path: str) -> str:
    """Check that ``path`` can be (or already is) a writable folder; return it. Raises UsageError."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--out {path!r} exists and is not a folder")
    parent = os.path.dirname(os.path.abspath(path))
    existing = path if os.path.isdir(path) else _nearest_existing(parent)
    if not os.path.isdir(existing):
        raise UsageError(f"--out {path!r}: {existing!r} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out {path!r}: {existing!r} is not writable")
    return path


def _nearest_existing(path: str) -> str:
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path
