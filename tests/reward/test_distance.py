"""Properties of reward.distance: the spatial order is a permutation that leaves distances alone,
and stratified samples lie on the surface, share it out by area and average closer to the exact
chamfer distance than as many independent samples."""

import numpy as np

from renderer.views import make_scene
from reward.distance import spatial_order, stratified_samples, surface_chamfer, surface_distance
from reward.geometry import sample_surface, triangle_areas
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


def _sphere(radius: float, centre=(0.0, 0.0, 0.0)):
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh.create_sphere(radius=radius, resolution=12)
    return np.asarray(mesh.vertices) + centre, np.asarray(mesh.triangles)


def _points_per_face(vertices, faces, points) -> np.ndarray:
    """How many of ``points`` lie on each face (the face closest to each)."""
    import open3d as o3d

    closest = make_scene(vertices, faces).compute_closest_points(o3d.core.Tensor(points.astype(np.float32)))
    return np.bincount(closest["primitive_ids"].numpy(), minlength=len(faces))


def test_stratified_samples_lie_on_the_surface_and_share_it_out_by_area():
    vertices, faces = _sphere(0.8, (0.1, -0.2, 0.05))
    points = stratified_samples(vertices, faces, 1000, seed=2)
    assert points.shape == (1000, 3)
    assert surface_distance(make_scene(vertices, faces), points).max() < 1e-5
    areas = triangle_areas(vertices, faces)
    expected = 1000 * areas / areas.sum()
    # within one either side (and a little more where a point on an edge is as close to the neighbour)
    assert np.abs(_points_per_face(vertices, faces, points) - expected).max() <= 1.5
    independent = sample_surface(vertices, faces, 1000, seed=2)
    assert np.abs(_points_per_face(vertices, faces, independent) - expected).max() > 3.0


def test_stratified_samples_follow_the_seed_and_come_in_spatial_order():
    vertices, faces = cube(1.0)
    first = stratified_samples(vertices, faces, 512, seed=3)
    assert np.array_equal(first, stratified_samples(vertices, faces, 512, seed=3))
    assert not np.array_equal(first, stratified_samples(vertices, faces, 512, seed=4))
    shuffled = np.random.default_rng(0).permutation(first)
    assert _mean_step(first) < 0.5 * _mean_step(shuffled)


def test_stratified_chamfer_is_closer_to_the_exact_value_than_independent_samples():
    target, moved = _sphere(0.7), cube(1.0, (0.2, 0.1, -0.1))
    t_scene, m_scene = make_scene(*target), make_scene(*moved)

    def chamfer(sampler, n, seed):
        return surface_chamfer(sampler(*moved, n, seed), m_scene, sampler(*target, n, seed + 100), t_scene)

    exact = np.mean([chamfer(sample_surface, 65536, seed) for seed in range(2)])
    stratified = [abs(chamfer(stratified_samples, 256, seed) - exact) for seed in range(8)]
    independent = [abs(chamfer(sample_surface, 256, seed) - exact) for seed in range(8)]
    assert np.mean(stratified) < 0.5 * np.mean(independent)
