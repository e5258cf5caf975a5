"""Shared test fixtures: skip OpenSCAD-backed tests cleanly when the binary is missing."""

import shutil

import pytest

needs_openscad = pytest.mark.skipif(
    shutil.which("openscad") is None, reason="OpenSCAD CLI not installed (apt-get install openscad)"
)
