"""Properties of reward.metrics: the CAD-Recode / cadrille evaluation protocol."""

import json
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from renderer.openscad import MeshResult, Status
from reward.metrics import normalise_unit_cube, protocol_metrics, protocol_seeds, summarise, volume_iou
from reward.score import RewardBreakdown
from tests.reward.meshes import box, ok


def test_normalisation_centres_the_box_and_makes_its_longest_side_one():
    vertices, _ = box((-3.0, 10.0, 2.0), (5.0, 12.0, 3.0))
    normalised = normalise_unit_cube(vertices)
    assert np.allclose(normalised.min(axis=0), [0.0, 0.375, 0.4375])
    assert np.allclose(normalised.max(axis=0), [1.0, 0.625, 0.5625])


def sampling_floor(extent, n_points: int) -> float:
    """Squared chamfer of two independent samplings of one box surface, normalised to the unit cube:
    ``2 A / (pi n)`` (each point's squared distance to the nearest of ``n`` uniform samples on area
    ``A`` is exponential with mean ``A / (pi n)``; both directions summed)."""
    x, y, z = np.asarray(extent, dtype=float) / max(extent)
    return 2 * 2 * (x * y + y * z + x * z) / (math.pi * n_points)


def test_identical_meshes_give_the_sampling_floor_and_full_iou():
    vertices, faces = box((0, 0, 0), (3, 2, 1))
    record = protocol_metrics(ok(vertices, faces), vertices, faces, n_points=2048)
    floor = sampling_floor((3, 2, 1), 2048)  # 0.76e-3
    # the mean of 2 x 2048 exponential distances has a relative standard error of 1.6 %: 15 % is 9 sigma
    assert record["valid"] and record["iou"] == 1.0
    assert 0.85 * floor < record["cd"] < 1.15 * floor


def test_an_exact_copy_scores_the_same_whatever_its_triangle_order():
    # With one seed for prediction and target an exact copy scored 0 in the target's triangle order
    # and about 0.2e-3 in any other; sampled independently, every copy sits at the sampling floor.
    vertices, faces = box((0, 0, 0), (1, 1, 0.02))
    floor = sampling_floor((1, 1, 0.02), 8192)  # 0.16e-3
    rng = np.random.default_rng(0)
    same = protocol_metrics(ok(vertices, faces), vertices, faces)["cd"]
    for _ in range(3):
        permuted = protocol_metrics(ok(vertices, faces[rng.permutation(len(faces))]), vertices, faces)
        assert 0.9 * floor < permuted["cd"] < 1.1 * floor  # relative standard error 0.8 %
        assert permuted["iou"] == 1.0
    assert 0.9 * floor < same < 1.1 * floor


def test_protocol_forgives_overall_size_and_position():
    vertices, faces = box((0, 0, 0), (3, 2, 1))
    moved = protocol_metrics(ok(vertices * 7 + 40, faces), vertices, faces, n_points=2048)
    same = protocol_metrics(ok(vertices, faces), vertices, faces, n_points=2048)
    assert moved["cd"] == pytest.approx(same["cd"], rel=1e-6) and moved["iou"] == 1.0


def test_prediction_and_target_are_sampled_from_independent_streams():
    seeds = protocol_seeds(0)
    assert len(set(seeds)) == 3 and protocol_seeds(0) == seeds and protocol_seeds(1) != seeds


def test_thin_plates_of_known_iou_measure_it_within_0_02():
    # plates 1 x 1 x t shifted by t / 2: IoU (t / 2) / (3 t / 2) = 1/3; surface-marked occupancy said 0.5
    rotation = Rotation.from_euler("xyz", [30, 20, 10], degrees=True).as_matrix()
    for thickness in (0.02, 0.003):
        a = box((0, 0, 0), (1, 1, thickness))
        b = box((0, 0, thickness / 2), (1, 1, 1.5 * thickness))
        assert volume_iou(a, b) == pytest.approx(1 / 3, abs=0.02)
        tilted = [(v @ rotation.T, f) for v, f in (a, b)]
        assert volume_iou(*tilted, seed=1) == pytest.approx(1 / 3, abs=0.02)


def test_protocol_iou_counts_no_volume_for_being_near_a_surface():
    # a slab against the same slab with its middle third cut out: same bounding box, IoU 2/3
    # (a grid that marks cells a surface crosses fills the 0.01-thick gap and says about 1)
    vertices, faces = box((0, 0, 0), (1, 1, 0.03))
    lower, upper = box((0, 0, 0), (1, 1, 0.01)), box((0, 0, 0.02), (1, 1, 0.03))
    split_vertices = np.concatenate([lower[0], upper[0]])
    split_faces = np.concatenate([lower[1], upper[1] + len(lower[0])])
    record = protocol_metrics(ok(split_vertices, split_faces), vertices, faces, n_points=1024)
    assert record["iou"] == pytest.approx(2 / 3, abs=0.02)


def test_meshes_that_enclose_no_volume_have_no_iou():
    flat = (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float), np.array([[0, 1, 2]]))
    assert volume_iou(flat, flat) is None


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
