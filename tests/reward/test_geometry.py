"""Properties of reward.geometry: sampling, chamfer distance, occupancy and IoU."""

import tracemalloc

import numpy as np
import pytest

from renderer.views import Frame
from reward.crossings import enclosed_volume
from reward.geometry import (
    GRID_EXTENT,
    MAX_SURFACE_AREA,
    SURFACE_POINTS_PER_CELL,
    chamfer,
    chamfer_reward,
    clean_mesh,
    clip_triangles,
    corner_areas,
    grid_axis,
    iou,
    occupancy,
    sample_surface,
    surface_cells,
    surface_plan,
    triangle_areas,
)
from reward.score import Scorer
from tests.reward.meshes import box, cube, ok


def test_same_seed_gives_the_same_samples_and_another_seed_others():
    vertices, faces = cube(1.0)
    first = sample_surface(vertices, faces, 500, seed=3)
    assert np.array_equal(first, sample_surface(vertices, faces, 500, seed=3))
    assert not np.array_equal(first, sample_surface(vertices, faces, 500, seed=4))


def test_samples_lie_on_the_surface():
    vertices, faces = cube(2.0)
    points = sample_surface(vertices, faces, 2000)
    assert points.shape == (2000, 3)
    assert np.all(np.abs(points) <= 1 + 1e-12)
    assert np.allclose(np.abs(points).max(axis=1), 1.0)


def test_samples_are_area_weighted():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 0, 0], [8, 0, 0], [5, 2, 0]], float)
    faces = np.array([[0, 1, 2], [3, 4, 5]])  # areas 0.5 and 3
    points = sample_surface(vertices, faces, 20000)
    assert np.mean(points[:, 0] < 2) == pytest.approx(0.5 / 3.5, abs=0.01)


def test_chamfer_matches_a_brute_force_nearest_neighbour_computation():
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(300, 3)), rng.normal(size=(200, 3)) + 0.3
    distances = np.linalg.norm(p[:, None] - q[None], axis=-1)
    near_pq, near_qp = distances.min(axis=1), distances.min(axis=0)
    assert chamfer(p, q) == pytest.approx(near_pq.mean() + near_qp.mean(), rel=1e-12)
    assert chamfer(p, q, squared=True) == pytest.approx((near_pq**2).mean() + (near_qp**2).mean())


def test_chamfer_of_identical_meshes_is_zero():
    vertices, faces = cube(1.0)
    points = sample_surface(vertices, faces, 1000)
    assert chamfer(points, points) == 0.0


def test_chamfer_of_a_cube_and_its_shifted_copy_is_analytic():
    # Unit cube A and B = A + d x (d < 1/2). From A's surface to B's, over A's six unit faces:
    # the face x=0 is d away; the face x=1 is inside B, min(d, y, 1-y, z, 1-z) from its boundary
    # (E[min^2] = d^2 - 8d^3/3 + 2d^4 for uniform y, z); the four side faces lie on B's except a
    # strip of width d, whose points are d - x away (integral of squares d^3/3 each). So the mean
    # squared distance is (2d^2 - 4d^3/3 + 2d^4) / 6 each way, and by symmetry the sum doubles it.
    d = 0.2
    expected = 2 * (2 * d**2 - 4 * d**3 / 3 + 2 * d**4) / 6
    vertices, faces = cube(1.0, (0.5, 0.5, 0.5))
    p = sample_surface(vertices, faces, 16384, seed=0)
    q = sample_surface(vertices + [d, 0, 0], faces, 16384, seed=1)
    # sampled (not exact) surfaces add a small positive bias, ~1% at this density
    assert chamfer(p, q, squared=True) == pytest.approx(expected, rel=0.03)


def test_chamfer_reward_maps_distance_into_unit_interval():
    assert chamfer_reward(0.0, 0.1) == 1.0
    assert chamfer_reward(0.1, 0.1) == pytest.approx(np.exp(-1))
    assert chamfer_reward(float("inf"), 0.1) == 0.0
    assert chamfer_reward(float("nan"), 0.1) == 0.0
    assert chamfer_reward(0.05, 0.1) > chamfer_reward(0.2, 0.1) > 0


def test_occupancy_of_a_cube_fills_the_cells_inside_it_and_those_its_faces_cross():
    vertices, faces = cube(0.9)  # faces at +-0.45: inside the cells centred at +-0.45
    grid = occupancy(vertices, faces, resolution=20, bounds=(-1.0, 1.0))
    axis = grid_axis(20, -1.0, 1.0)
    inside = np.abs(axis) < 0.5
    assert np.array_equal(grid, inside[:, None, None] & inside[None, :, None] & inside[None, None, :])


def test_a_part_thinner_than_a_cell_is_not_an_empty_grid():
    """No cell centre lies inside a 0.02-thick plate; its surface still marks cells, so two
    different thin plates do not score the IoU 1 of two empty grids."""
    plate, faces = box(np.array([-0.8, -0.4, 0.005]), np.array([0.8, 0.4, 0.025]))
    other, _ = box(np.array([0.3, -0.2, 0.005]), np.array([0.7, 0.2, 0.025]))
    grid, other_grid = occupancy(plate, faces, resolution=48), occupancy(other, faces, resolution=48)
    assert grid.any() and grid.any(axis=(0, 1)).sum() <= 2  # one or two layers of cells
    assert iou(grid, other_grid) < 0.2


def test_iou_of_identical_meshes_is_one():
    vertices, faces = cube(1.3, (0.1, -0.2, 0.05))
    grid = occupancy(vertices, faces)
    assert grid.any() and iou(grid, grid) == 1.0


def test_iou_of_a_cube_and_one_twice_as_big_is_one_eighth():
    small, faces = cube(1.0)
    big, _ = cube(2.0)
    frame = Frame.of(big)
    value = iou(occupancy(frame.apply(small), faces), occupancy(frame.apply(big), faces))
    assert value == pytest.approx(1 / 8, abs=0.02)


def test_iou_of_disjoint_boxes_is_zero_and_of_two_empty_grids_one():
    a, faces = box((-0.9, -0.9, -0.9), (-0.1, 0.5, 0.5))
    b, _ = box((0.1, -0.9, -0.9), (0.9, 0.5, 0.5))
    assert iou(occupancy(a, faces), occupancy(b, faces)) == 0.0
    empty = np.zeros((4, 4, 4), bool)
    assert iou(empty, empty) == 1.0


def test_clean_mesh_drops_broken_faces_and_unused_vertices():
    vertices, faces = cube(1.0)
    vertices = np.vstack([vertices, [[np.nan, 0, 0], [7, 7, 7]]])
    broken = np.array([[0, 1, 8], [0, 1, 99], [-1, 0, 1], [0, 0, 1]])  # NaN, out of range, <0, zero area
    clean_vertices, clean_faces = clean_mesh(vertices, np.vstack([faces, broken]))
    assert len(clean_faces) == 12 and len(clean_vertices) == 8
    assert triangle_areas(clean_vertices, clean_faces).sum() == pytest.approx(6.0)


@pytest.mark.parametrize(
    "vertices, faces",
    [(None, None), ([[0, 0]], [[0, 0, 0]]), ([[0, 0, 0], [1, 1]], [[0, 1, 1]]), ("abc", [[0, 1, 2]])],
)
def test_clean_mesh_turns_malformed_input_into_an_empty_mesh(vertices, faces):
    clean_vertices, clean_faces = clean_mesh(vertices, faces)
    assert clean_vertices.shape == (0, 3) and clean_faces.shape == (0, 3)


def _r2_cells_by_loop(vertices, faces, resolution, bounds):
    """Reference for :func:`surface_cells`: every triangle sampled whole, one triangle at a time."""
    cell = (bounds[1] - bounds[0]) / resolution
    density, plastic = SURFACE_POINTS_PER_CELL / cell**2, 1.32471795724474602596
    points = [np.asarray(vertices, float)]
    for a, b, c in np.asarray(vertices, float)[faces]:
        j = np.arange(max(1, int(np.ceil(0.5 * np.linalg.norm(np.cross(b - a, c - a)) * density))))
        u, v = (0.5 + j / plastic) % 1.0, (0.5 + j / plastic**2) % 1.0
        u, v = np.where(u + v > 1, 1 - u, u)[:, None], np.where(u + v > 1, 1 - v, v)[:, None]
        points.append(a + u * (b - a) + v * (c - a))
    index = np.floor((np.concatenate(points) - bounds[0]) / cell).astype(int)
    index = index[np.all((index >= 0) & (index < resolution), axis=1)]
    grid = np.zeros((resolution,) * 3, bool)
    grid[tuple(index.T)] = True
    return grid


@pytest.mark.parametrize(
    "mesh",
    [cube(0.6), cube(1.15), cube(2.3), cube(4.6), cube(1.0, (0.7, -0.3, 0.2)), cube(3.0, (1.4, 0.2, -0.5)),
     box((-3.0, -0.5, -0.5), (0.3, 0.5, 0.5)), box((-0.8, -0.4, 0.005), (0.8, 0.4, 0.025))],
)
def test_surface_cells_of_ordinary_meshes_match_whole_triangle_sampling(mesh):
    """Up to 4x the target (triangles of up to 4 grid faces), clipping changes nothing."""
    bounds = (-GRID_EXTENT, GRID_EXTENT)
    for resolution in (20, 48):
        expected = _r2_cells_by_loop(*mesh, resolution, bounds)
        assert np.array_equal(surface_cells(*mesh, resolution, bounds), expected)


def test_clipping_keeps_exactly_the_part_of_a_triangle_inside_the_cube():
    huge = np.array([[[-1e4, -1e4, 0.3], [3e4, -1e4, 0.3], [-1e4, 3e4, 0.3]]])  # covers the z=0.3 square
    pieces = clip_triangles(huge, -1.0, 1.0)
    assert np.all(np.abs(pieces) <= 1.0 + 1e-9) and corner_areas(pieces).sum() == pytest.approx(4.0)
    inside = np.array([[[0.1, 0.1, 0.1], [0.5, 0.1, 0.2], [0.1, 0.6, -0.3]]])
    assert corner_areas(clip_triangles(inside, -1.0, 1.0)).sum() == pytest.approx(corner_areas(inside)[0])
    assert len(clip_triangles(inside + 5.0, -1.0, 1.0)) == 0


def test_surface_points_are_capped_however_much_surface_crosses_the_grid():
    """600 planes as big as the grid (2.7 times the full-density area): the density drops."""
    resolution, bounds = 16, (-GRID_EXTENT, GRID_EXTENT)
    heights = np.linspace(-1.0, 1.0, 600)
    vertices = np.concatenate([[[-1e3, -1e3, z], [3e3, -1e3, z], [-1e3, 3e3, z]] for z in heights])
    faces = np.arange(len(vertices)).reshape(-1, 3)
    corners, counts = surface_plan(vertices, faces, resolution, bounds)
    assert counts.sum() <= SURFACE_POINTS_PER_CELL * resolution**2 * MAX_SURFACE_AREA + len(counts)
    per_layer = surface_cells(vertices, faces, resolution, bounds).sum(axis=(0, 1))
    assert np.all(per_layer >= 0.9 * resolution**2)  # sparser points still mark almost every cell


@pytest.mark.parametrize("centre", [(0.0, 0.0, 0.0), (500.0, 0.0, 0.0)])  # around the grid; a face through it
def test_a_prediction_1000_times_the_target_scores_in_bounded_memory(centre):
    scorer = Scorer(threads=1)
    prepared = scorer.prepare(*cube(1.0))
    pred = ok(*cube(1000.0, centre))
    resolution, bounds = prepared.occupancy.shape[0], (-GRID_EXTENT, GRID_EXTENT)
    _, counts = surface_plan(prepared.frame.apply(pred.vertices), pred.faces, resolution, bounds)
    assert counts.sum() <= 20_000  # the part of one face inside the grid, at 4 points per cell area
    tracemalloc.start()
    try:
        breakdown = scorer(pred, prepared)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MB"
    assert breakdown.status == "ok" and 0.0 <= breakdown.total <= 1.0
    if centre == (0.0, 0.0, 0.0):  # the target is inside the prediction, a billionth of its volume
        assert 0.0 < breakdown.iou == pytest.approx(1e-9, rel=0.5)


def test_iou_counts_volume_outside_the_grid_only_when_it_exceeds_the_grid_cells():
    a, b = np.zeros((4, 4, 4), bool), np.zeros((4, 4, 4), bool)
    a[:2], b[:1] = True, True  # A: 32 cells, B: 16 inside A
    assert iou(a, b) == 0.5
    assert iou(a, b, a_volume=20.0) == 0.5  # A's volume fits in its cells: nothing outside
    assert iou(a, b, a_volume=32.0 + 96.0) == pytest.approx(16 / 128)  # 96 cells' volume outside
    assert iou(a, b, a_volume=float("nan")) == 0.5


def test_a_part_far_longer_than_the_target_gets_the_iou_its_volume_deserves():
    target = box((-0.5, -0.3, -0.3), (0.5, 0.3, 0.3))
    bar = box((-20.0, -0.3, -0.3), (20.0, 0.3, 0.3))  # the target's cross-section, 40x as long
    cell = 2 * GRID_EXTENT / 48
    target_grid, bar_grid = occupancy(*target, 48), occupancy(*bar, 48)
    assert iou(bar_grid, target_grid) > 0.45  # inside the grid the bar covers about half of it
    exact = 0.36 / (0.36 * 40)
    assert iou(bar_grid, target_grid, enclosed_volume(*bar) / cell**3) == pytest.approx(exact, abs=0.01)
    same = iou(target_grid, target_grid, enclosed_volume(*target) / cell**3)
    assert same == 1.0  # a part inside the grid: unchanged
