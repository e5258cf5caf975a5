"""bench/openscad_pictures.py: the export settings, the sandboxed PNG export and the paired figures."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest

from bench.openscad_pictures import ExportSettings, export_png, paired_figures
from renderer.views import CANONICAL_CAMERAS
from tests.conftest import needs_openscad

needs_xvfb = pytest.mark.skipif(shutil.which("xvfb-run") is None,
                                reason="xvfb-run not installed (apt-get install xvfb)")


def test_the_iso_camera_looks_from_our_iso_direction():
    x, y, z = CANONICAL_CAMERAS[0].direction
    assert f"--camera={x:g},{y:g},{z:g},0,0,0" in ExportSettings().arguments()


def test_the_default_camera_leaves_openscad_its_own_view():
    assert not any(a.startswith("--camera") for a in ExportSettings(camera="default").arguments())


@needs_openscad
@needs_xvfb
def test_an_export_is_a_png_of_the_asked_size_on_openscads_cream_background():
    from PIL import Image

    export = export_png("cube([10, 20, 5]);", ExportSettings(imgsize=(160, 120)))
    assert export.png is not None, export.detail
    picture = Image.open(io.BytesIO(export.png)).convert("RGB")
    assert picture.size == (160, 120)
    r, g, b = picture.getpixel((0, 0))
    assert r > 240 and g > 240 and b < 240  # cream, not our white


@needs_openscad
@needs_xvfb
def test_a_program_that_makes_nothing_is_a_failed_export_not_an_exception():
    export = export_png("this is not openscad(", ExportSettings(imgsize=(64, 64)))
    assert export.png is None and export.detail


def test_an_invalid_program_counts_as_iou_zero_in_the_paired_difference():
    ours = [{"valid": True, "iou": 0.5, "cd": 0.001}, {"valid": True, "iou": 0.7, "cd": 0.002}]
    theirs = [{"valid": False, "iou": None, "cd": None}, {"valid": True, "iou": 0.6, "cd": 0.003}]
    paired = paired_figures(ours, theirs)
    assert np.isclose(paired["protocol IoU (invalid = 0)"]["difference"], ((0 - 0.5) + (0.6 - 0.7)) / 2)
    assert paired["protocol IoU, both valid"]["n"] == 1
