"""Command-line plumbing shared by the ``rl`` commands, and their one JSON writer.

Every bad input (unknown option or config key, out-of-range value, missing folder or
file) ends the command with one line on stderr, ``rl.sft: error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


class UsageError(Exception):
    """A bad argument or set-up problem: one line on stderr and exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (no usage block), exit 2."""

    def error(self, message: str):
        fail(self.prog, message)


def fail(prog: str, message) -> None:
    """Print ``prog: error: <first line of message>`` to stderr and exit with status 2."""
    text = str(message).strip()
    first = text.splitlines()[0] if text else "failed"
    print(f"{prog}: error: {first}", file=sys.stderr)
    raise SystemExit(2)


def set_threads(threads: int) -> None:
    """Use ``threads`` torch CPU threads (1 is fastest when other jobs share 2 cores)."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set once in this process
        pass


def quiet_libraries() -> None:
    """Turn off the per-file progress bars of ``datasets`` and of ``save_pretrained`` (the
    Trainer's own progress bar is kept)."""
    import datasets
    from transformers.utils import logging

    datasets.disable_progress_bars()
    logging.disable_progress_bar()


def write_json(path: str, values) -> str:
    """Write ``values`` as indented JSON, atomically (a killed run never leaves half a file); the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(values, fh, indent=2)
    os.replace(path + ".tmp", path)
    return path


def load_checkpoint(path: str):
    """The policy saved in ``path``; a folder without ``policy.json`` or a checkpoint that cannot load
    (bad ``policy.json``, unknown kind, missing base model, pickled weights) is a :class:`UsageError`."""
    from policies import CheckpointError, load_policy

    if not os.path.exists(os.path.join(path, "policy.json")):
        raise UsageError(
            f"checkpoint {path!r} holds no policy (no policy.json); train one with 'python -m rl.sft' "
            "or pass --checkpoint runs/<name>/final"
        )
    try:
        return load_policy(path)
    except CheckpointError as error:
        raise UsageError(str(error)) from error
