"""Properties of reward.metrics: the CAD-Recode / cadrille evaluation protocol."""

import json
import math

import numpy as np
import pytest

from renderer.openscad import MeshResult, Status
from reward.metrics import normalise_unit_cube, protocol_metrics, summarise
from reward.score import RewardBreakdown
from tests.reward.meshes import box, ok


def test_normalisation_centres_the_box_and_makes_its_longest_side_one():
    vertices, _ = box((-3.0, 10.0, 2.0), (5.0, 12.0, 3.0))
    normalised = normalise_unit_cube(vertices)
    assert np.allclose(normalised.min(axis=0), [0.0, 0.375, 0.4375])
    assert np.allclose(normalised.max(axis=0), [1.0, 0.625, 0.5625])


def test_identical_meshes_give_zero_cd_and_full_iou():
    vertices, faces = box((0, 0, 0), (3, 2, 1))
    record = protocol_metrics(ok(vertices, faces), vertices, faces, n_points=2048)
    assert record == {"valid": True, "status": "ok", "cd": 0.0, "iou": 1.0}


def test_protocol_forgives_overall_size_and_position():
    vertices, faces = box((0, 0, 0), (3, 2, 1))
    record = protocol_metrics(ok(vertices * 7 + 40, faces), vertices, faces, n_points=2048)
    assert record["cd"] == pytest.approx(0.0, abs=1e-20) and record["iou"] == 1.0


def test_protocol_sees_a_change_of_shape():
    vertices, faces = box((0, 0, 0), (3, 2, 1))
    squashed, _ = box((0, 0, 0), (3, 2, 0.5))
    record = protocol_metrics(ok(squashed, faces), vertices, faces, n_points=2048)
    assert record["cd"] > 1e-3 and 0.4 < record["iou"] < 0.6  # half the height: IoU 1/2


def test_failed_program_gives_an_invalid_record():
    vertices, faces = box((0, 0, 0), (1, 1, 1))
    record = protocol_metrics(MeshResult(Status.SYNTAX_ERROR), vertices, faces)
    assert record == {"valid": False, "status": "syntax_error", "cd": None, "iou": None}


def test_summarise_reports_median_cd_times_1e3_mean_iou_and_invalid_ratio():
    records = [
        {"valid": True, "cd": 0.001, "iou": 0.9},
        {"valid": True, "cd": 0.002, "iou": 0.7},
        {"valid": True, "cd": 0.010, "iou": 0.5},
        {"valid": False, "cd": None, "iou": None},
    ]
    summary = summarise(records)
    assert summary["n"] == 4 and summary["n_valid"] == 3 and summary["ir"] == 0.25
    assert summary["cd_median_x1e3"] == pytest.approx(2.0)
    assert summary["cd_mean_x1e3"] == pytest.approx(13 / 3)
    assert summary["iou_mean"] == pytest.approx(0.7)


def test_summarise_of_nothing_valid_has_no_nan():
    for records in ([], [{"valid": False, "cd": None, "iou": None}]):
        summary = summarise(records)
        json.dumps(summary)
        assert not any(isinstance(v, float) and math.isnan(v) for v in summary.values())
        assert summary["cd_median_x1e3"] is None and summary["iou_mean"] is None


def test_summarise_accepts_reward_breakdowns():
    records = [
        RewardBreakdown(0.8, 0.7, 0.6, 0.5, 1.0, "ok", 0.1),
        RewardBreakdown(-1.0, 0.0, 0.0, 0.0, 0.0, "timeout", 30.0),
    ]
    summary = summarise(records)
    assert summary["ir"] == 0.5 and summary["iou_mean"] == 0.5 and summary["cd_median_x1e3"] is None
