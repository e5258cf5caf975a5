"""Properties of reward.score: the composite reward in the target's frame."""

import dataclasses
import json
import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from renderer.openscad import MeshResult, Status
from reward.score import RewardBreakdown, RewardWeights, Scorer, prepare_target, score
from tests.conftest import needs_openscad
from tests.reward.meshes import box, cube, ok

WEIGHTS = RewardWeights()
LO, HI = np.array([0.0, 0.0, 0.0]), np.array([3.0, 2.0, 1.0])  # asymmetric, so every view sees errors
DIAGONAL = float(np.linalg.norm(HI - LO))


@pytest.fixture(scope="module")
def target():
    return prepare_target(*box(LO, HI), WEIGHTS)


def moved(shift=(0.0, 0.0, 0.0), scale=1.0) -> MeshResult:
    """The target box, scaled about its centre and shifted."""
    centre = (LO + HI) / 2
    vertices, faces = box(LO, HI)
    return ok((vertices - centre) * scale + centre + np.asarray(shift), faces)


def assert_finite(result: RewardBreakdown):
    for name, value in result.to_dict().items():
        if isinstance(value, float):
            assert math.isfinite(value), name


def test_identical_mesh_gets_full_marks(target):
    result = score(moved(), target)
    # to float rounding: on an AVX-512 EPYC, SSIM of two equal images came out 1 - 8e-9
    assert (result.total, result.ssim, result.chamfer, result.iou) == pytest.approx((1, 1, 1, 1), abs=1e-6)
    assert result.valid == 1 and result.chamfer_distance == 0.0 and result.status == "ok"


def test_position_error_lowers_the_reward(target):
    totals = [score(moved(shift=(f * DIAGONAL, 0, 0)), target).total for f in (0.0, 0.03, 0.1, 0.3)]
    assert totals == sorted(totals, reverse=True) and len(set(totals)) == 4
    assert totals[-1] < 0.5


def test_scale_error_lowers_the_reward(target):
    totals = [score(moved(scale=s), target).total for s in (1.0, 1.1, 1.5, 3.0)]
    assert totals == sorted(totals, reverse=True) and len(set(totals)) == 4
    assert score(moved(scale=0.5), target).total < totals[1]


def test_every_term_drops_for_a_wrong_size(target):
    result = score(moved(scale=1.5), target)
    assert max(result.ssim, result.chamfer, result.iou) < 0.5


def test_scale_free_grades_shape_not_size_or_position(target):
    free = RewardWeights(scale_free=True)
    for pred in (moved(scale=1.5), moved(shift=(0.3 * DIAGONAL, 0, 0), scale=0.4)):
        result = score(pred, target, free)
        assert result.total > 0.99 and result.chamfer_distance < 1e-4  # the same box, resized
        assert score(pred, target).total < 0.6
    vertices, faces = box(LO, (3.0, 2.0, 3.0))  # another shape is still wrong at any size
    assert score(ok(vertices * 2.0, faces), target, free).total < 0.5
    views = Scorer(free, threads=1).pred_views(moved(scale=1.5), target)
    assert np.abs(views - target.images).max() < 1e-6


def test_fit_size_grades_the_program_fitted_to_the_box_about_the_origin(target):
    fit = RewardWeights(fit_size=True)
    stretched = ok(*box(LO, (6.0, 1.0, 3.0)))  # the target box with each axis scaled about the origin
    result = score(stretched, target, fit)
    assert result.total == pytest.approx(1.0, abs=1e-6) and result.chamfer_distance < 1e-9
    assert score(stretched, target).total < 0.6
    off_origin = ok(*box((1.0, 0.0, 0.0), (7.0, 1.0, 3.0)))  # fitted about the origin: lands 0.5 off
    assert 0.3 < score(off_origin, target, fit).total < 0.9
    views = Scorer(fit, threads=1).pred_views(stretched, target)
    assert np.abs(views - target.images).max() < 1e-6


def test_the_size_term_grades_the_programs_own_box_even_when_the_reward_fits_it(target):
    doubled = ok(*box(LO, 2 * HI))  # the target box, twice its size on every axis
    fit_and_size = RewardWeights(fit_size=True, size=1.0)
    result = score(doubled, target, fit_and_size)
    assert result.size == pytest.approx(0.5) and result.iou == pytest.approx(1.0, abs=1e-6)
    assert result.total == pytest.approx((1 + 1 + 1 + 0.1 + 0.5) / 4.1, abs=1e-6)
    assert score(doubled, target, RewardWeights(fit_size=True)).total == pytest.approx(1.0, abs=1e-6)
    assert score(ok(*box(LO, HI)), target, fit_and_size).size == pytest.approx(1.0)


def test_same_inputs_give_the_same_breakdown():
    first_target, second_target = (prepare_target(*box(LO, HI), WEIGHTS) for _ in range(2))
    assert np.array_equal(first_target.points, second_target.points)
    pred = moved(shift=(0.2, 0.1, 0))
    first, second = score(pred, first_target), score(pred, second_target)
    assert {**first.to_dict(), "score_seconds": 0} == {**second.to_dict(), "score_seconds": 0}


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.OK])
def test_failed_programs_get_the_penalty_and_zero_terms(target, status):
    result = score(MeshResult(status, seconds=0.25), target)
    assert result.total == WEIGHTS.invalid_penalty
    assert (result.ssim, result.chamfer, result.iou, result.valid) == (0, 0, 0, 0)
    assert result.status == status.value and result.seconds == 0.25
    assert result.chamfer_distance is None


@pytest.mark.parametrize(
    "vertices, faces",
    [
        (np.zeros((0, 3)), np.zeros((0, 3), np.int64)),
        (np.full((3, 3), np.nan), [[0, 1, 2]]),
        ([[0, 0, 0], [np.inf, 0, 0], [0, 1, 0]], [[0, 1, 2]]),
        ([[0, 0, 0], [1e300, 0, 0], [0, 1e300, 0]], [[0, 1, 2]]),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 5]]),
        ([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2]]),  # collinear: zero area
        ([[0, 0], [1, 0]], [[0, 1]]),
        (None, None),
    ],
)
def test_unusable_meshes_get_the_penalty_without_raising(target, vertices, faces):
    result = score(SimpleNamespace(status=Status.OK, vertices=vertices, faces=faces, seconds=0.1), target)
    assert result.total == WEIGHTS.invalid_penalty and result.valid == 0
    assert result.status in ("empty", "degenerate")
    assert_finite(result)


def test_a_mesh_with_some_broken_faces_is_scored_on_the_rest(target):
    vertices, faces = box(LO, HI)
    vertices = np.vstack([vertices, [[np.nan, np.nan, np.nan]]])
    faces = np.vstack([faces, [[0, 1, 8], [0, 1, 42]]])
    result = score(ok(vertices, faces), target)
    assert result.total == pytest.approx(1.0)


def test_a_single_sliver_triangle_gets_almost_nothing(target):
    sliver = ok([[0, 0, 0], [3, 0, 0], [1.5, 0.002, 0]], [[0, 1, 2]])
    result = score(sliver, target)
    assert result.valid == 1 and 0 <= result.total < 0.05


def test_total_stays_between_penalty_and_one(target):
    preds = [moved(shift=(s, 0, 0), scale=k) for s in (0, 1, 5) for k in (0.3, 1, 4)]
    for result in (score(p, target) for p in preds):
        assert WEIGHTS.invalid_penalty <= result.total <= 1
        assert all(0 <= t <= 1 for t in (result.ssim, result.chamfer, result.iou))
        assert_finite(result)


def test_plain_string_status_is_accepted(target):
    vertices, faces = box(LO, HI)
    result = score(SimpleNamespace(status="ok", vertices=vertices, faces=faces, seconds=0.0), target)
    assert result.total == pytest.approx(1.0, abs=1e-6) and result.status == "ok"


def test_scorer_and_prepared_target_survive_pickling(target):
    scorer = Scorer(WEIGHTS, size=64, threads=1)
    prepared = pickle.loads(pickle.dumps(scorer.prepare(*box(LO, HI))))
    restored = pickle.loads(pickle.dumps(scorer))
    pred = moved(shift=(0.3, 0, 0))
    assert restored(pred, prepared).total == pytest.approx(scorer(pred, prepared).total)
    assert prepared.images.shape == (4, 64, 64)


def test_breakdown_is_json_ready(target):
    for pred in (moved(), MeshResult(Status.TIMEOUT)):
        record = json.loads(json.dumps(score(pred, target).to_dict()))
        assert set(record) >= {"total", "ssim", "chamfer", "iou", "valid", "status", "seconds"}


def test_an_empty_target_is_refused():
    with pytest.raises(ValueError, match="no usable face"):
        prepare_target(np.zeros((0, 3)), np.zeros((0, 3), np.int64))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"ssim": -1.0}, "weights"),
        ({"ssim": 0, "chamfer": 0, "iou": 0, "valid": 0}, "weights"),
        ({"invalid_penalty": 0.5}, "invalid_penalty"),
        ({"chamfer_scale": 0.0}, "chamfer_scale"),
        ({"n_points": 0}, "n_points"),
        ({"view_size": 10}, "view_size"),
    ],
)
def test_weights_refuse_bad_values_and_say_why(changes, message):
    with pytest.raises(ValueError, match=message):
        RewardWeights(**changes)


def test_the_views_compared_are_view_size_pixels_on_a_side():
    vertices, faces = cube(1.0)
    for size in (32, 48):
        scorer = Scorer(RewardWeights(view_size=size), threads=1)
        prepared = scorer.prepare(vertices, faces)
        breakdown, views = scorer.score_with_views(ok(vertices * 0.8, faces), prepared)
        assert prepared.images.shape[1:] == views.shape[1:] == (size, size)
        assert 0.0 < breakdown.ssim < 1.0


@needs_openscad
def test_real_openscad_part_scores_itself_higher_than_a_variant():
    from renderer.openscad import run

    part = run("difference() { cube([30, 20, 8]); translate([15, 10, -1]) cylinder(d=8, h=10); }")
    variant = run("cube([30, 20, 8]);")
    prepared = prepare_target(part.vertices, part.faces)
    assert score(part, prepared).total == 1.0
    assert 0 < score(variant, prepared).total < 1.0


def test_same_surface_triangulated_differently_gets_full_chamfer_term():
    vertices, faces = cube(2.0)
    # split every triangle at its centroid: same surface, three times the faces, other samples
    centroids = vertices[faces].mean(axis=1)
    split_vertices = np.concatenate([vertices, centroids])
    c = np.arange(len(faces)) + len(vertices)
    split_faces = np.concatenate(
        [np.stack([faces[:, 0], faces[:, 1], c], 1), np.stack([faces[:, 1], faces[:, 2], c], 1),
         np.stack([faces[:, 2], faces[:, 0], c], 1)]
    )
    prepared = prepare_target(vertices, faces)
    result = score(ok(split_vertices, split_faces), prepared)
    # IoU's surface cells come from sampled points: other samples on a face lying on a cell
    # boundary may mark the cell on its other side
    assert result.chamfer == 1.0 and result.iou > 0.99


def test_score_with_views_returns_the_breakdown_and_the_views_of_a_fresh_render():
    scorer = Scorer(threads=1)
    prepared = scorer.prepare(*box(LO, HI))
    pred = moved((0.1, 0.0, 0.0))
    breakdown, views = scorer.score_with_views(pred, prepared)
    assert breakdown == dataclasses.replace(scorer(pred, prepared), score_seconds=breakdown.score_seconds)
    np.testing.assert_array_equal(views, Scorer(threads=1).pred_views(pred, prepared))
    other = moved((0.3, 0.0, 0.0))  # each call renders its own prediction
    assert not np.array_equal(scorer.score_with_views(other, prepared)[1], views)


UNUSABLE = [MeshResult(Status.SYNTAX_ERROR), ok(np.zeros((3, 3)), np.array([[0, 1, 2]]))]
"""A failed run, and an ok run whose only triangle has no area."""


@pytest.mark.parametrize("pred", UNUSABLE)
def test_score_with_views_of_an_unusable_prediction_is_the_penalty_and_blank_views(pred):
    scorer = Scorer(threads=1)
    prepared = scorer.prepare(*box(LO, HI))
    breakdown, views = scorer.score_with_views(pred, prepared)
    assert breakdown.valid == 0.0 and breakdown.total == WEIGHTS.invalid_penalty
    assert views.shape == prepared.images.shape and np.all(views == 1.0)
    np.testing.assert_array_equal(views, scorer.pred_views(pred, prepared))


def test_a_scorer_keeps_no_state_between_calls():
    scorer = Scorer(threads=1)
    before = pickle.dumps(scorer)
    prepared = scorer.prepare(*box(LO, HI))
    scorer.score_with_views(moved(), prepared)
    scorer(moved((0.2, 0.0, 0.0)), prepared)
    assert pickle.dumps(scorer) == before
