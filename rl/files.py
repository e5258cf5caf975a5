"""Atomic JSON writes for run folders: a killed run never leaves half a file behind."""

from __future__ import annotations

import json
import os


def write_json(path: str, values) -> str:
    """Write ``values`` as indented JSON through a temporary file and a rename; the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(values, fh, indent=2)
    os.replace(path + ".tmp", path)
    return path
