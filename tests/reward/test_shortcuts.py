"""Each shortcut the reward takes for speed gives what the plain computation gives.

The plain computations are written out here (as the reward did them before the
shortcuts), so a change to a shortcut is checked against something it does not share.
"""

import pickle

import numpy as np
import open3d as o3d
import pytest
from scipy import ndimage

from renderer.views import make_scene
from reward.geometry import clean_mesh, grid_axis, occupancy, r2_points, surface_cells
from reward.score import Scorer, score
from reward.ssim import SIGMA, TRUNCATE, masked_ssim, target_moments
from tests.reward.meshes import BOX_FACES, box, cube, ok

BOUNDS = (-1.05, 1.05)


def _occupancy_asking_every_centre(vertices, faces, resolution):
    """Occupancy as first written: every centre in the bounding box asked, then the surface cells."""
    grid = np.zeros((resolution,) * 3, dtype=bool)
    axis = grid_axis(resolution, *BOUNDS)
    lo = np.searchsorted(axis, vertices.min(axis=0), side="left")
    hi = np.searchsorted(axis, vertices.max(axis=0), side="right")
    if np.all(hi > lo):
        box_ = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        points = np.stack(np.meshgrid(*(axis[s] for s in box_), indexing="ij"), axis=-1)
        inside = make_scene(vertices, faces).compute_occupancy(o3d.core.Tensor(points.astype(np.float32)))
        grid[box_] = inside.numpy() > 0.5
    return grid | surface_cells(vertices, faces, resolution, BOUNDS)


def _two_boxes_through_each_other():
    a, faces = box((-0.8, -0.3, -0.3), (0.5, 0.3, 0.3))
    b, _ = box((-0.2, -0.7, -0.5), (0.2, 0.7, 0.6))
    return np.vstack([a, b]), np.vstack([faces, faces + 8])


@pytest.mark.parametrize(
    "mesh",
    [
        cube(0.9),  # faces through cell centres at resolution 20 of [-1, 1]
        cube(1.3, (0.1, -0.2, 0.05)),
        box((-0.8, -0.4, 0.005), (0.8, 0.4, 0.025)),  # thinner than a cell
        (cube(1.2)[0], BOX_FACES[2:]),  # one side missing: crossing counts go wrong in places
        _two_boxes_through_each_other(),  # self-intersecting
        cube(3.0, (1.4, 0.2, -0.5)),  # mostly outside the grid
    ],
)
@pytest.mark.parametrize("resolution", [20, 48])
def test_occupancy_skipping_surface_cells_equals_asking_every_centre(mesh, resolution):
    vertices, faces = np.asarray(mesh[0], float), np.asarray(mesh[1])
    expected = _occupancy_asking_every_centre(vertices, faces, resolution)
    assert np.array_equal(occupancy(vertices, faces, resolution, BOUNDS, threads=1), expected)


def _r2_points_by_search(corners, counts, start, stop):
    """r2_points as first written: each point's triangle found by a binary search."""
    ends = np.cumsum(counts)
    flat = np.arange(start, stop)
    owner = np.searchsorted(ends, flat, side="right")
    j = flat - (ends - counts)[owner]
    plastic = 1.32471795724474602596
    u, v = (0.5 + j / plastic) % 1.0, (0.5 + j / plastic**2) % 1.0
    fold = u + v > 1.0
    u, v = np.where(fold, 1.0 - u, u)[:, None], np.where(fold, 1.0 - v, v)[:, None]
    a, b, c = corners[owner, 0], corners[owner, 1], corners[owner, 2]
    return a + u * (b - a) + v * (c - a)


def test_r2_points_of_any_range_equal_the_binary_search_version():
    rng = np.random.default_rng(0)
    corners = rng.normal(size=(40, 3, 3))
    counts = rng.integers(1, 30, size=40)
    total = int(counts.sum())
    for start, stop in [(0, total), (0, 1), (5, 6), (17, 400), (total - 3, total), (3, 3)]:
        expected = _r2_points_by_search(corners, counts, start, stop)
        assert np.array_equal(r2_points(corners, counts, start, stop), expected)


def test_clean_mesh_numbers_the_kept_vertices_as_np_unique_does():
    rng = np.random.default_rng(1)
    vertices = rng.normal(size=(300, 3))
    faces = np.array([rng.choice(np.arange(0, 300, 3), 3, replace=False) for _ in range(80)])  # a third
    kept, renumbered = clean_mesh(vertices, faces)
    used, inverse = np.unique(faces, return_inverse=True)
    assert np.array_equal(kept, vertices[used]) and np.array_equal(renumbered, inverse.reshape(-1, 3))
    assert renumbered.dtype == np.int64


def _views(seed, shape=(4, 64, 64)):
    rng = np.random.default_rng(seed)
    images = ndimage.uniform_filter(rng.random(shape), size=(1, 5, 5)).astype(np.float32)
    return images, rng.random(shape) < 0.3


def test_target_moments_are_scipys_gaussian_filter_to_float32_rounding():
    images, _ = _views(2)
    moments = target_moments(images)
    y = images.astype(np.float64)
    for got, image in zip(moments, (y, y * y), strict=True):
        expected = ndimage.gaussian_filter(image, sigma=(0, SIGMA, SIGMA), truncate=TRUNCATE, mode="reflect")
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_masked_ssim_with_target_moments_equals_filtering_the_target_again():
    pred, masks = _views(3)
    target, _ = _views(4)
    masks[:, :20] = False  # a box smaller than the views: the moments are cropped
    plain = masked_ssim(pred, target, masks)
    assert masked_ssim(pred, target, masks, target_moments(target)) == pytest.approx(plain, abs=1e-6)


def test_a_pickled_target_leaves_its_caches_behind_and_scores_the_same():
    prepared = Scorer(threads=1).prepare(*box((0, 0, 0), (3, 2, 1)))
    pred = ok(*box((0.2, 0, 0), (3, 2.2, 1)))
    first = score(pred, prepared, threads=1)  # builds the scene and the SSIM moments
    restored = pickle.loads(pickle.dumps(prepared))
    assert "_ssim_moments" not in restored.__dict__ and "_scene" not in restored.__dict__
    again = score(pred, restored, threads=1)
    assert {**first.to_dict(), "score_seconds": 0} == {**again.to_dict(), "score_seconds": 0}
