"""Properties of reward.distance: the spatial order is a permutation that leaves distances alone."""

import numpy as np

from renderer.views import make_scene
from reward.distance import spatial_order, surface_chamfer, surface_distance
from reward.geometry import sample_surface
from tests.reward.meshes import cube


def test_spatial_order_is_a_permutation_even_of_points_far_outside():
    points = np.random.default_rng(0).normal(scale=3.0, size=(500, 3))
    assert np.array_equal(np.sort(spatial_order(points)), np.arange(500))


def _mean_step(points):
    return np.linalg.norm(np.diff(points, axis=0), axis=1).mean()


def test_spatial_order_puts_neighbours_next_to_each_other():
    points = np.random.default_rng(1).uniform(-1, 1, size=(2048, 3))
    assert _mean_step(points[spatial_order(points)]) < 0.3 * _mean_step(points)


def test_reordered_points_get_the_same_distances_and_chamfer():
    target, moved = cube(1.0), cube(1.1, (0.05, 0.0, -0.02))
    p, q = sample_surface(*moved, n=1024, seed=3), sample_surface(*target, n=1024, seed=4)
    p_scene, q_scene = make_scene(*moved), make_scene(*target)
    order = spatial_order(p)
    assert np.array_equal(surface_distance(q_scene, p[order]), surface_distance(q_scene, p)[order])
    shuffled = surface_chamfer(p[order], p_scene, q[spatial_order(q)], q_scene)
    assert abs(shuffled - surface_chamfer(p, p_scene, q, q_scene)) < 1e-12
